//! The command line, as clap derive types. Names, flags and environment variables here are a
//! contract (see the README): extend, never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "psn",
    version,
    about = "Write posts once; psn publishes them to X, LinkedIn, Instagram, Facebook, Threads, TikTok, YouTube, Pinterest, Bluesky and Mastodon — on time, exactly once.",
    after_help = "Examples:\n  psn init ~/social && cd ~/social\n  psn validate \"Hello, world\" --to x,bluesky\n  psn post \"Shipping today!\" --to x,bluesky --at \"2026-12-01 09:30\"\n  psn queue\n  psn calendar --days 14"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The workspace folder (default: found by walking up from the current directory).
    #[arg(long, global = true, env = "PSN_WORKSPACE", value_name = "PATH")]
    pub workspace: Option<PathBuf>,
    /// The hub to use: `personal` or a company hub added with `psn hub add`.
    #[arg(long, global = true, default_value = "personal", value_name = "NAME")]
    pub hub: String,
    /// Act as this team member (company hubs).
    #[arg(long = "as", global = true, env = "PSN_USER", value_name = "USER")]
    pub as_user: Option<String>,
    /// Machine-readable output on stdout (logs stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace (never overwrites your files).
    #[command(after_help = "Example:\n  psn init ~/social")]
    Init(InitArgs),
    /// Run the worker and the local HTTP server (health, metrics) until stopped.
    #[command(after_help = "Examples:\n  psn up\n  psn up --listen 127.0.0.1:9000")]
    Up(UpArgs),
    /// Run only the worker: publish due posts on time, exactly once.
    #[command(
        after_help = "Examples:\n  psn worker\n  psn worker --once   # publish what is due now, then exit"
    )]
    Worker(WorkerArgs),
    /// Check the workspace, the key, each hub and optional tools.
    Doctor,
    /// Manage hubs (databases).
    #[command(subcommand)]
    Hub(HubCommand),
    /// Manage connected accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Create a post (checked against every platform's rules before anything is queued).
    #[command(
        after_help = "Examples:\n  psn post \"Hello\" --to x,bluesky --now\n  psn post \"Launch day\" --to linkedin --at \"2026-12-01 09:30\"\n  psn post --file content/drafts/launch.md\n  psn post \"$(cat long.txt)\" --to x --thread --at +2h"
    )]
    Post(PostArgs),
    /// Run the pre-flight checks alone: exit 0 when valid, 2 when a rule is broken.
    #[command(
        after_help = "Example:\n  psn validate \"Hello, world\" --to x,bluesky,mastodon --json"
    )]
    Validate(ValidateArgs),
    /// What is scheduled, by status.
    Queue(QueueArgs),
    /// What is scheduled, by day.
    Calendar(CalendarArgs),
    /// One post with its deliveries and their attempt history.
    Show(IdArg),
    /// Move a post that has not been published to a new time.
    #[command(after_help = "Example:\n  psn reschedule p_5x3k9q2m7r1a \"2026-12-02 10:00\"")]
    Reschedule(RescheduleArgs),
    /// Cancel a post that has not been published.
    Cancel(IdArg),
    /// Re-queue what failed in a post (published parts are never sent again).
    Retry(IdArg),
    /// Replace the text of a post that has not been published.
    #[command(after_help = "Example:\n  psn edit p_5x3k9q2m7r1a \"Better wording\"")]
    Edit(EditArgs),
    /// The media library: files stored cleaned (no EXIF/GPS, XMP, IPTC, C2PA) under content/media/.
    #[command(subcommand)]
    Media(MediaCommand),
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Add files: probe, check, strip metadata and store them by content hash (originals stay untouched).
    #[command(
        after_help = "Examples:\n  psn media add photo.jpg clip.mp4\n  psn media add reel.mov --to instagram,tiktok   # also check them against these platforms\n  psn media add generated.png --json"
    )]
    Add(MediaAddArgs),
    /// The files in the library, with the posts that use them.
    #[command(after_help = "Examples:\n  psn media list\n  psn media list --all --json")]
    List {
        /// Include deleted files.
        #[arg(long)]
        all: bool,
    },
    /// Delete files from the library (refused while an unfinished post uses them, unless --force).
    #[command(after_help = "Example:\n  psn media rm 3f2a9c")]
    Rm {
        /// Content hashes (or unique prefixes of at least 6 characters), as `media list` shows.
        #[arg(required = true, value_name = "HASH")]
        hashes: Vec<String>,
        /// Delete even if a post that is not finished uses the file.
        #[arg(long)]
        force: bool,
    },
    /// A public URL for a library file: a presigned S3 link (uploading it once) or the public base URL.
    #[command(after_help = "Example:\n  psn media url 3f2a9c")]
    Url {
        /// Content hash or a unique prefix of at least 6 characters.
        #[arg(value_name = "HASH")]
        hash: String,
    },
}

#[derive(Debug, Args)]
pub struct MediaAddArgs {
    /// Image and video files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Check the files against these platforms' media rules (and transcode for them when needed).
    #[arg(long, value_delimiter = ',', value_name = "PLATFORM")]
    pub to: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the HTTP server listens (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub listen: String,
    /// Allow a non-loopback --listen address (the server has no authentication yet).
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Publish what is due now, then exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the workspace (default: the current directory).
    pub path: Option<PathBuf>,
    /// The workspace time zone (IANA name, e.g. Europe/Berlin). Default: $TZ or UTC.
    #[arg(long)]
    pub timezone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// List the hubs of this workspace.
    List,
    /// Register a hub (writes config/connections/NAME.env after checking it is reachable).
    #[command(
        after_help = "Example:\n  psn hub add acme --database-url postgres://psn@db.example/acme"
    )]
    Add {
        name: String,
        #[arg(long, value_name = "URL")]
        database_url: String,
    },
    /// Each hub: reachable, schema version, pending migrations.
    Status { name: Option<String> },
    /// Apply pending migrations (to one hub, or all).
    Migrate { name: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// List connected accounts (never shows a token).
    List,
    /// Connect an account. Headless: --token-stdin (JSON), or for Bluesky --handle with --app-password-stdin.
    #[command(
        after_help = "Examples:\n  echo '{\"access_token\":\"…\",\"refresh_token\":\"…\",\"expires_in\":7200,\"account_id\":\"123\",\"handle\":\"me\"}' | psn accounts connect x --token-stdin\n  echo \"$APP_PASSWORD\" | psn accounts connect bluesky --handle me.bsky.social --app-password-stdin\n  echo '{\"access_token\":\"…\",\"account_id\":\"1\",\"handle\":\"me\"}' | psn accounts connect mastodon --instance https://mastodon.social --token-stdin"
    )]
    Connect(ConnectArgs),
    /// Disconnect an account and erase its tokens.
    Disconnect {
        id: String,
        /// Also cancel the deliveries still waiting for this account.
        #[arg(long)]
        cancel_pending: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    pub platform: String,
    /// Read the token JSON (access_token, refresh_token, expires_in, account_id, handle) from stdin.
    #[arg(long)]
    pub token_stdin: bool,
    /// Bluesky handle.
    #[arg(long)]
    pub handle: Option<String>,
    /// Read the Bluesky app password from stdin.
    #[arg(long)]
    pub app_password_stdin: bool,
    /// Bluesky PDS URL.
    #[arg(long, default_value = "https://bsky.social")]
    pub service: String,
    /// Mastodon instance URL.
    #[arg(long)]
    pub instance: Option<String>,
}

/// What a post says and where it goes: shared by `post` and `validate`.
#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    /// The text (or use --file).
    pub text: Option<String>,
    /// Where to post: PLATFORM[:ACCOUNT], comma-separated or repeated (x,bluesky:me.bsky.social).
    #[arg(long, value_delimiter = ',', value_name = "PLATFORM[:ACCOUNT]")]
    pub to: Vec<String>,
    /// Split long text into a thread where the platform has threads.
    #[arg(long)]
    pub thread: bool,
    /// Do not add "1/n" numbering to thread segments.
    #[arg(long)]
    pub no_numbering: bool,
    /// Attach a media file (repeatable).
    #[arg(long, value_name = "PATH")]
    pub media: Vec<PathBuf>,
    /// Alt text for the media files, in order (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub alt: Vec<String>,
    /// The language of the post (BCP 47: en, es, pt-BR).
    #[arg(long, value_name = "CODE")]
    pub lang: Option<String>,
    /// Title (YouTube, Pinterest).
    #[arg(long)]
    pub title: Option<String>,
    /// Pinterest board.
    #[arg(long)]
    pub board: Option<String>,
    /// A Markdown draft with front matter (to, at, lang, thread, title, board).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub compose: ComposeArgs,
}

#[derive(Debug, Args)]
pub struct PostArgs {
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// When: RFC 3339, "YYYY-MM-DD HH:MM" in the workspace time zone, or +15m / +2h / +1d.
    #[arg(long, value_name = "TIME", conflicts_with = "now")]
    pub at: Option<String>,
    /// Publish as soon as a worker can.
    #[arg(long)]
    pub now: bool,
    /// Save as a draft (not published until scheduled).
    #[arg(long)]
    pub draft: bool,
    /// A key that makes retries of this command safe: the same key returns the first post.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Check everything and show what would be created; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Only these statuses (comma-separated). Default: pending_approval, scheduled, publishing, needs_attention.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Every status, including published and cancelled.
    #[arg(long)]
    pub all: bool,
    /// Only posts due within this many days.
    #[arg(long)]
    pub days: Option<u32>,
    /// At most this many posts.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// How many days to show, starting today.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// First day (YYYY-MM-DD, workspace time zone). Default: today.
    #[arg(long)]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The post id (p_…).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RescheduleArgs {
    pub id: String,
    /// The new time: RFC 3339, "YYYY-MM-DD HH:MM" or +15m / +2h / +1d.
    pub time: String,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub id: String,
    /// The new text (or use --file).
    pub text: Option<String>,
    /// Read the new text from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Change the language.
    #[arg(long)]
    pub lang: Option<String>,
}
