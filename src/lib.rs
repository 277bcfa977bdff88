//! Slipway's domain core (being written).
