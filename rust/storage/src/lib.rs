//! calving-storage (work in progress)
