//! PNG figures (in progress).
