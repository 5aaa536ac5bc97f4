//! Example tasks (being written).
