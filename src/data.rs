//! Datasets, standardization, CSV and split-directory loading (in progress).
