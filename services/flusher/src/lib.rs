//! carat-flusher: to be written.
