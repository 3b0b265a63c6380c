//! Layers and optimisers built on the tape.
