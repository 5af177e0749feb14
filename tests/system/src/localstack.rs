//! The LocalStack path (`CARAT_AWS=localstack`, cargo feature `localstack`): the suite runs
//! on LocalStack instead of moto, started through testcontainers with the repository's
//! `localstack/init/ready.d/` mounted where LocalStack runs it once ready (the same init
//! script that makes moto's resources and every scenario's own). The container is marked
//! for reuse: the first test binary starts it, the others find it, and it stays up after
//! the suite as moto does (`docker rm -f $(docker ps -q --filter label=carat=system-tests)`
//! removes it).
//!
//! Without a reachable Docker daemon, or built without the feature, [`start`] says why,
//! and scenarios that call [`crate::services::skip`] print it and skip.

/// What `CARAT_AWS` asks for: `localstack`, or anything else (unset: moto).
#[must_use]
pub fn wanted() -> bool {
    std::env::var("CARAT_AWS").is_ok_and(|v| v.eq_ignore_ascii_case("localstack"))
}

/// Why no Docker daemon can be reached, or `None` if one may be: `DOCKER_HOST` is set
/// (testcontainers tries it), or a socket testcontainers looks at accepts a connection.
#[must_use]
pub fn no_docker() -> Option<String> {
    if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
        return None;
    }
    let mut tried = Vec::new();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut sockets = vec!["/var/run/docker.sock".to_string()];
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(format!("{x}/.docker/run/docker.sock"));
    }
    sockets.push(format!("{home}/.docker/run/docker.sock"));
    sockets.push(format!("{home}/.docker/desktop/docker.sock"));
    for s in sockets {
        match std::os::unix::net::UnixStream::connect(&s) {
            Ok(_) => return None,
            Err(e) => tried.push(format!("{s}: {e}")),
        }
    }
    Some(format!(
        "no Docker daemon reachable (DOCKER_HOST is unset; {})",
        tried.join("; ")
    ))
}

/// Starts (or finds) LocalStack and waits until its init script has run; its endpoint,
/// or why it cannot be had.
///
/// # Errors
/// No Docker daemon, the feature not built, or the container not ready in time.
#[cfg(not(feature = "localstack"))]
pub fn start() -> Result<String, String> {
    Err(
        "CARAT_AWS=localstack, but carat-system-tests was built without its `localstack` \
         feature (cargo test -p carat-system-tests --features localstack)"
            .into(),
    )
}

/// Starts (or finds) LocalStack and waits until its init script has run; its endpoint,
/// or why it cannot be had.
///
/// # Errors
/// No Docker daemon, or the container not ready in time.
#[cfg(feature = "localstack")]
pub fn start() -> Result<String, String> {
    if let Some(why) = no_docker() {
        return Err(why);
    }
    // Its own thread and runtime: callers may be inside a runtime already, and the
    // container must outlive the test that happened to start it.
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for testcontainers: {e}"))?
            .block_on(run())
    })
    .join()
    .map_err(|_| "starting LocalStack panicked".to_string())?
}

#[cfg(feature = "localstack")]
async fn run() -> Result<String, String> {
    use std::time::{Duration, Instant};
    use testcontainers::core::{AccessMode, IntoContainerPort as _, Mount, WaitFor};
    use testcontainers::runners::AsyncRunner as _;
    use testcontainers::{GenericImage, ImageExt as _, ReuseDirective};

    let init = crate::repo_root().join("localstack/init/ready.d");
    // As localstack/docker-compose.yml runs it.
    let container = GenericImage::new("localstack/localstack", "4")
        .with_exposed_port(4566.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready."))
        .with_env_var("SERVICES", "kinesis,dynamodb,dynamodbstreams,s3,cloudwatch")
        .with_env_var("AWS_DEFAULT_REGION", "us-east-1")
        .with_env_var("CARAT_SHARDS", "2")
        .with_mount(
            Mount::bind_mount(init.display().to_string(), "/etc/localstack/init/ready.d")
                .with_access_mode(AccessMode::ReadOnly),
        )
        .with_label("carat", "system-tests")
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(Duration::from_secs(300))
        .start()
        .await
        .map_err(|e| format!("starting LocalStack with testcontainers: {e}"))?;
    let port = container
        .get_host_port_ipv4(4566.tcp())
        .await
        .map_err(|e| format!("LocalStack's port 4566: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    // LocalStack reports its init scripts' state; the READY stage runs ready.d.
    let http = crate::Http::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = http
            .send(
                hyper::Method::GET,
                &format!("{endpoint}/_localstack/init/ready"),
                &[],
                bytes::Bytes::new(),
            )
            .await;
        if let Ok(r) = &r {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if v["completed"] == true {
                let failed: Vec<&serde_json::Value> = v["scripts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["state"] != "SUCCESSFUL")
                    .collect();
                if failed.is_empty() {
                    break;
                }
                return Err(format!("LocalStack's init scripts failed: {failed:?}"));
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "LocalStack's init scripts did not complete within 120 s (last: {:?})",
                r.map(|r| r.text())
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Marked for reuse: dropping it leaves it running for the next test binary.
    drop(container);
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    /// Where no daemon answers, the reason names every socket tried; where one does (or
    /// `DOCKER_HOST` is set), there is no reason.
    #[test]
    fn no_docker_says_what_it_tried() {
        match super::no_docker() {
            Some(why) => {
                eprintln!("{why}");
                assert!(why.contains("/var/run/docker.sock: "), "{why}");
            }
            None => eprintln!("a Docker daemon may answer here: nothing to check"),
        }
    }
}
