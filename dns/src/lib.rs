//! Waymark's DNS interface — not built yet. It will hold the hickory-server request
//! handler, name parsing under the `waymark.` domain and record building, reading the
//! catalog through a small read trait that `registry` implements (see ARCHITECTURE.md).
