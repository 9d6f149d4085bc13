//! Integration tests of the `psn` binary: every command's success path and its refusals
//! (exit code 2, a message that says what is wrong, nothing written).

mod support;

#[path = "cli/accounts.rs"]
mod accounts;
#[path = "cli/company.rs"]
mod company;
#[path = "cli/doctor.rs"]
mod doctor;
#[path = "cli/hub.rs"]
mod hub;
#[path = "cli/init.rs"]
mod init;
#[path = "cli/manage.rs"]
mod manage;
#[path = "cli/media.rs"]
mod media;
#[path = "cli/oauth.rs"]
mod oauth;
#[path = "cli/platform_access.rs"]
mod platform_access;
#[path = "cli/post.rs"]
mod post;
#[path = "cli/queue.rs"]
mod queue;
#[path = "cli/validate.rs"]
mod validate;
#[path = "cli/workspace.rs"]
mod workspace;
