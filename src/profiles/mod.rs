//! Penpot user profiles, created and deleted with the backend's own admin command
//! (`python3 manage.py create-profile|update-profile|delete-profile`) run in the `penpot` container of a
//! Ready pod through the exec API, as the charm's actions do. Two front ends share it: the
//! `profile` command and the `PenpotProfile` controller.

pub mod controller;
mod exec;

pub use exec::{ManageError, Outcome, create_profile, delete_profile, generate_password, ready_pod, update_password};
