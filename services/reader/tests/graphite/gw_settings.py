"""graphite-web settings for gen_golden.py: the fixture finder, no tag database, no
worker pool, logs and the sqlite file in a temporary directory."""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="carat-gw-")
SECRET_KEY = "carat-golden"
STORAGE_FINDERS = ("fixture.FixtureFinder",)
TAGDB = ""
USE_WORKER_POOL = False
LOG_DIR = _TMP
STORAGE_DIR = _TMP
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DATABASES = {"default": {"NAME": os.path.join(_TMP, "g.db"), "ENGINE": "django.db.backends.sqlite3"}}
