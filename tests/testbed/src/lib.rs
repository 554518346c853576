//! Placeholder: the testbed is being written.
