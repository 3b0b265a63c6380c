//! scDREAMER and scDREAMER-Sup networks and losses.
