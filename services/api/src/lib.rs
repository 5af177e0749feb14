//! carat-api: to be written.
