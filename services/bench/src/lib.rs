//! carat-bench: to be written.
