//! calving-layout (work in progress)
