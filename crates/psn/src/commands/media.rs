//! `psn media add | list | rm | url`: the workspace's media library (`content/media/`,
//! gitignored). Files are probed, checked, stripped of metadata and stored by content hash; the
//! hub records them and which posts use them, so the worker's lifecycle job can delete them.

use chrono::Utc;
use psn_media::library::{StoredMedia, remove_file};
use psn_media::transcode::find_tool;
use psn_media::{Library, PublicMedia};
use psn_platforms::rules::media::{check_files, needs_transcode};
use psn_store::{MediaRecord, NewMedia};
use serde::Serialize;

use super::compose::{media_error, parse_targets, platforms_of};
use crate::cli::{Global, MediaAddArgs, MediaCommand};
use crate::error::{CliError, CliResult, invalid};
use crate::output::print_json;
use crate::workspace::{Workspace, actor, read_env_file};

pub async fn run(global: &Global, cmd: MediaCommand) -> CliResult {
    match cmd {
        MediaCommand::Add(args) => add(global, args).await,
        MediaCommand::List { all } => list(global, all).await,
        MediaCommand::Rm { hashes, force } => rm(global, &hashes, force).await,
        MediaCommand::Url { hash } => url(global, &hash).await,
    }
}

/// The hub record of a stored file.
pub fn new_media(stored: &StoredMedia, created_by: &str) -> NewMedia {
    NewMedia {
        sha256: stored.sha256.clone(),
        created_by: created_by.to_string(),
        path: stored.path.display().to_string(),
        kind: stored.probe.kind().as_str().to_string(),
        mime: stored.probe.mime().to_string(),
        bytes: stored.probe.bytes,
        original_name: stored.original_name.clone(),
        probe: serde_json::to_value(&stored.probe).unwrap_or_default(),
    }
}

/// The public-URL configuration: each variable from the environment, else `config/keys.env`.
pub fn public_media(ws: &Workspace) -> CliResult<Option<PublicMedia>> {
    let keys = ws.config_dir().join("keys.env");
    let file = if keys.is_file() {
        read_env_file(&keys)?
    } else {
        Default::default()
    };
    PublicMedia::from_vars(&|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
        .map_err(media_error)
}

#[derive(Debug, Serialize)]
struct Added {
    #[serde(flatten)]
    stored: StoredMedia,
    mime: &'static str,
    aspect_ratio: Option<String>,
}

async fn add(global: &Global, args: MediaAddArgs) -> CliResult {
    let ws = Workspace::locate(global)?;
    let platforms = if args.to.is_empty() {
        Vec::new()
    } else {
        platforms_of(&parse_targets(&args.to)?)
    };
    // Every file is probed and checked before any is stored.
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    let ffprobe = find_tool("ffprobe");
    for path in &args.files {
        let mut p = Library::prepare(path, ffprobe.as_deref()).map_err(media_error)?;
        if platforms
            .iter()
            .any(|&pl| needs_transcode(pl, &p.summary(None)))
            && let Some(ffmpeg) = find_tool("ffmpeg")
        {
            eprintln!(
                "psn: converting {} to H.264/AAC MP4 with ffmpeg",
                path.display()
            );
            p = p.transcode(&ffmpeg).map_err(media_error)?;
        }
        for &platform in &platforms {
            for issue in check_files(platform, &[p.summary(None)]) {
                problems.push(format!(
                    "{}: [{}] {}",
                    path.display(),
                    issue.rule,
                    issue.message.trim_start_matches("media 1: ")
                ));
            }
        }
        prepared.push(p);
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  {p}");
        }
        return Err(invalid(format!(
            "{} problem(s) with these files; nothing was added",
            problems.len()
        )));
    }
    let hub = ws.open_hub(&global.hub).await?;
    let library = Library::new(ws.root.join("content/media"));
    let who = actor(global);
    let mut added = Vec::new();
    for p in &prepared {
        let stored = library.store(p).map_err(media_error)?;
        hub.record_media(&new_media(&stored, &who), Utc::now())
            .await?;
        added.push(Added {
            mime: stored.probe.mime(),
            aspect_ratio: stored.probe.aspect_ratio(),
            stored,
        });
    }
    if global.json {
        print_json(&added);
    } else {
        for a in &added {
            let s = &a.stored;
            println!(
                "{} {} {}{}",
                &s.sha256[..12],
                s.original_name,
                describe_probe(&serde_json::to_value(&s.probe).unwrap_or_default()),
                if s.removed.is_empty() {
                    String::new()
                } else {
                    format!(", removed {}", s.removed.join(", "))
                }
            );
            println!("    {}", s.path.display());
        }
    }
    Ok(())
}

fn describe_probe(p: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(f) = p.get("format").and_then(|v| v.as_str()) {
        parts.push(f.to_string());
    }
    if let (Some(w), Some(h)) = (
        p.get("width").and_then(|v| v.as_u64()),
        p.get("height").and_then(|v| v.as_u64()),
    ) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(d) = p.get("duration_secs").and_then(|v| v.as_f64()) {
        parts.push(format!("{d:.1} s"));
    }
    let codecs: Vec<&str> = ["video_codec", "audio_codec"]
        .iter()
        .filter_map(|k| p.get(*k).and_then(|v| v.as_str()))
        .collect();
    if !codecs.is_empty() {
        parts.push(codecs.join("/"));
    }
    if let Some(f) = p.get("frame_rate").and_then(|v| v.as_f64()) {
        parts.push(format!("{f} fps"));
    }
    if let Some(b) = p.get("bytes").and_then(|v| v.as_u64()) {
        parts.push(format!("{b} bytes"));
    }
    parts.join(", ")
}

#[derive(Debug, Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    record: &'a MediaRecord,
    /// The file is still on disk.
    exists: bool,
}

async fn list(global: &Global, all: bool) -> CliResult {
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let records = hub.list_media(all).await?;
    let listed: Vec<Listed> = records
        .iter()
        .map(|r| Listed {
            record: r,
            exists: std::path::Path::new(&r.path).is_file(),
        })
        .collect();
    if global.json {
        print_json(&listed);
        return Ok(());
    }
    if listed.is_empty() {
        println!("The media library is empty. Add files with `psn media add FILE…`.");
        return Ok(());
    }
    for l in &listed {
        let r = l.record;
        let state = match (r.deleted_at, l.exists) {
            (Some(_), _) => "deleted".to_string(),
            (None, false) => "missing".to_string(),
            (None, true) if r.posts.is_empty() => "unattached".to_string(),
            (None, true) => format!("{} post(s)", r.posts.len()),
        };
        println!(
            "{}  {:<5} {:<16} {:<12} {}  {}",
            &r.sha256[..12],
            r.kind,
            r.mime,
            state,
            r.original_name,
            describe_probe(&r.probe)
        );
    }
    Ok(())
}

/// The one record a hash or prefix names.
async fn find_one(hub: &psn_store::Hub, hash: &str) -> CliResult<MediaRecord> {
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() < 6 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "'{hash}' is not a media hash: give at least 6 hex characters as `psn media list` shows"
        )));
    }
    let mut found = hub.find_media(&hash).await?;
    match found.len() {
        0 => Err(invalid(format!(
            "no media file with hash {hash} in this hub; see `psn media list --all`"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(invalid(format!(
            "{n} media files start with {hash}: give more characters"
        ))),
    }
}

#[derive(Debug, Serialize)]
struct Removed {
    sha256: String,
    path: String,
    file_deleted: bool,
}

async fn rm(global: &Global, hashes: &[String], force: bool) -> CliResult {
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let mut targets = Vec::new();
    for h in hashes {
        let record = find_one(&hub, h).await?;
        let in_use = hub.media_in_use(&record.sha256).await?;
        if !in_use.is_empty() && !force {
            return Err(invalid(format!(
                "{} is used by post(s) not yet published: {}; cancel them first or add --force",
                &record.sha256[..12],
                in_use.join(", ")
            )));
        }
        targets.push(record);
    }
    let mut removed = Vec::new();
    for r in targets {
        let file_deleted = remove_file(std::path::Path::new(&r.path))
            .map_err(|e| CliError::Failed(anyhow::anyhow!(e.to_string())))?;
        hub.mark_media_deleted(&r.sha256, Utc::now()).await?;
        removed.push(Removed {
            sha256: r.sha256,
            path: r.path,
            file_deleted,
        });
    }
    if global.json {
        print_json(&removed);
    } else {
        for r in &removed {
            println!("deleted {} ({})", &r.sha256[..12], r.path);
        }
    }
    Ok(())
}

async fn url(global: &Global, hash: &str) -> CliResult {
    let ws = Workspace::locate(global)?;
    let public = public_media(&ws)?.ok_or_else(|| {
        invalid(
            "no public media URL is configured: set PSN_MEDIA_S3_ENDPOINT, PSN_MEDIA_S3_BUCKET, \
             PSN_MEDIA_S3_ACCESS_KEY_ID and PSN_MEDIA_S3_SECRET_ACCESS_KEY (in config/keys.env), \
             or PSN_MEDIA_PUBLIC_BASE_URL for `psn up` behind a public address",
        )
    })?;
    let hub = ws.open_hub(&global.hub).await?;
    let record = find_one(&hub, hash).await?;
    if record.deleted_at.is_some() {
        return Err(invalid(format!(
            "{} was deleted from the library; add the file again with `psn media add`",
            &record.sha256[..12]
        )));
    }
    let link = public
        .url_for(std::path::Path::new(&record.path), &record.mime)
        .await
        .map_err(media_error)?;
    if global.json {
        print_json(&serde_json::json!({
            "sha256": record.sha256,
            "url": link.url,
            "expires_at": link.expires_at,
            "uploaded": link.uploaded,
        }));
    } else {
        println!("{}", link.url);
    }
    Ok(())
}
