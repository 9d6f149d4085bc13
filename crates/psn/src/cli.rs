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
    /// The members of a company hub and their roles (admins manage them).
    #[command(subcommand)]
    Team(TeamCommand),
    /// Posts awaiting approval on a company hub (contributors see their own).
    #[command(after_help = "Example:\n  psn --hub acme --as erin approvals")]
    Approvals,
    /// Approve a post on a company hub: its deliveries are scheduled (editors and admins; never your own post).
    #[command(after_help = "Example:\n  psn --hub acme --as erin approve p_5x3k9q2m7r1a")]
    Approve(IdArg),
    /// Reject a post on a company hub, with a reason its author sees in `psn show`.
    #[command(
        after_help = "Example:\n  psn --hub acme --as erin reject p_5x3k9q2m7r1a --reason \"Use the product's full name\""
    )]
    Reject(RejectArgs),
    /// Submit a draft, or a rejected post you revised with `psn edit`, for approval (company hubs; its author only).
    #[command(
        after_help = "Example:\n  psn --hub acme --as bob edit p_5x3k9q2m7r1a \"Acme ships tomorrow\"\n  psn --hub acme --as bob submit p_5x3k9q2m7r1a"
    )]
    Submit(IdArg),
    /// The media library: files stored cleaned (no EXIF/GPS, XMP, IPTC, C2PA) under content/media/.
    #[command(subcommand)]
    Media(MediaCommand),
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a member, or change a member's role (admins only).
    #[command(
        after_help = "Examples:\n  psn --hub acme --as alice team add bob --role contributor\n  psn --hub acme --as alice team add erin --role editor"
    )]
    Add {
        /// The member's user name (what they pass as --as / PSN_USER).
        user: String,
        /// admin (members, accounts, approvals, migrations), editor (approves), contributor (writes posts that wait for approval).
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// List the members and their roles.
    #[command(after_help = "Example:\n  psn --hub acme team list --json")]
    List,
    /// Remove a member (admins only; never the last admin).
    #[command(after_help = "Example:\n  psn --hub acme --as alice team remove bob")]
    Remove { user: String },
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The post id (p_…).
    pub id: String,
    /// Why, for the author.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
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
    /// With --owner-url it is a company hub: team roles, approvals, row-level security.
    #[command(
        after_help = "Examples:\n  psn hub add acme --owner-url postgres://acme_owner:…@db.example/acme --as alice\n      # creates the runtime and worker roles, migrates as the owner, makes alice the first admin\n  psn hub add acme --owner-url postgres://acme_owner:…@db.example/acme \\\n      --database-url postgres://acme_app:…@db.example/acme --worker-url postgres://acme_worker:…@db.example/acme\n  psn hub add shared --database-url postgres://psn@db.example/shared   # one role, no team roles"
    )]
    Add {
        name: String,
        /// The URL day-to-day queries use (company hubs: the runtime role, which owns no
        /// tables and cannot bypass row-level security; created when missing).
        #[arg(long, value_name = "URL", required_unless_present = "owner_url")]
        database_url: Option<String>,
        /// Makes a company hub: the owner of the tables, used for migrations (admins only).
        #[arg(long, value_name = "URL")]
        owner_url: Option<String>,
        /// Company hubs: the worker role's URL (created when missing).
        #[arg(long, value_name = "URL", requires = "owner_url")]
        worker_url: Option<String>,
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
    /// Connect an account: OAuth in the browser (X, LinkedIn, Instagram, Facebook, Threads, TikTok, YouTube, Pinterest, Mastodon), an app password (Bluesky), or headless with --token-stdin.
    #[command(
        after_help = "Examples:\n  psn accounts connect x\n  psn accounts connect mastodon --instance https://mastodon.social\n  psn accounts connect facebook --page 1234567890\n  psn accounts connect linkedin --organization\n  psn accounts connect youtube --no-browser --paste   # approve on another machine, paste the address\n  echo '{\"access_token\":\"…\",\"refresh_token\":\"…\",\"expires_in\":7200,\"account_id\":\"123\",\"handle\":\"me\"}' | psn accounts connect x --token-stdin\n  echo \"$APP_PASSWORD\" | psn accounts connect bluesky --handle me.bsky.social --app-password-stdin\n  echo '{\"access_token\":\"…\",\"account_id\":\"1\",\"handle\":\"me\"}' | psn accounts connect mastodon --instance https://mastodon.social --token-stdin"
    )]
    Connect(ConnectArgs),
    /// Make a lightweight identity call per account (or one) and record the result.
    #[command(
        after_help = "Examples:\n  psn accounts check\n  psn accounts check a_5x3k9q2m7r1a --json\n\nExit 1 when any account's token was refused or its platform could not be reached."
    )]
    Check {
        /// The account id (a_…); default: every connected account.
        id: Option<String>,
    },
    /// Re-encrypt every stored token under a new key (one transaction per hub) and write the
    /// new key to config/keys.env.
    #[command(
        after_help = "Example:\n  psn accounts rotate-key\n\nBack up config/keys.env afterwards: the old key no longer opens anything."
    )]
    RotateKey,
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
    /// The port of the one-shot OAuth callback listener on 127.0.0.1 (the app's redirect URI is
    /// http://127.0.0.1:PORT/callback).
    #[arg(
        long,
        env = "PSN_OAUTH_PORT",
        default_value_t = 18923,
        value_name = "PORT"
    )]
    pub callback_port: u16,
    /// Do not open a browser; print the authorization address only.
    #[arg(long)]
    pub no_browser: bool,
    /// Paste the address the browser was sent to instead of listening for it.
    #[arg(long)]
    pub paste: bool,
    /// Facebook / Instagram: the Page (or Instagram account) to connect, by id or name.
    /// LinkedIn: the organization page to connect too (id or name; implies --organization).
    #[arg(long, value_name = "ID")]
    pub page: Option<String>,
    /// LinkedIn: also ask for organization page posting (needs the Community Management API);
    /// psn lists the pages you administer and asks which one to connect.
    #[arg(long)]
    pub organization: bool,
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
