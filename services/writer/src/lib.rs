//! carat-writer: to be written.
