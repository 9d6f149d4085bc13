//! What `post`, `validate` and `edit` share: reading the text (argument or Markdown file with
//! front matter), the targets, the media summaries, and running the platform rules.

use std::path::{Path, PathBuf};

use psn_domain::{Language, MediaSummary, Platform};
use psn_media::Library;
use psn_media::library::Prepared;
use psn_media::transcode::find_tool;
use psn_platforms::rules::media::needs_transcode;
use psn_platforms::{ValidationReport, ValidationRequest, validate};
use serde::{Deserialize, Serialize};

use crate::cli::ComposeArgs;
use crate::error::{CliError, CliResult, invalid};

/// One `--to` entry: a platform and optionally which account (handle or id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub platform: Platform,
    pub account: Option<String>,
}

/// An attached file, as recorded with the post (`posts.media`, a JSON array): `path` is the
/// stored, metadata-stripped (and if needed transcoded) copy under `content/media/`, `sha256`
/// its content hash, `original` the file the user gave; the summary's fields (`kind`, `bytes`,
/// `alt`, `mime`, `width`, `height`, `duration_secs`, `video_codec`, `audio_codec`,
/// `frame_rate`) sit beside them. Before storing (`validate`, `--dry-run`) `path` is the
/// user's file and `sha256` is absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaFile {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<PathBuf>,
    #[serde(flatten)]
    pub summary: MediaSummary,
}

/// A post as composed on the command line, before any account is resolved.
#[derive(Debug)]
pub struct Composed {
    pub text: String,
    pub targets: Vec<Target>,
    pub thread: bool,
    pub numbering: bool,
    pub media: Vec<MediaFile>,
    /// The probed and cleaned files behind `media`, in order, ready to store.
    pub prepared: Vec<Prepared>,
    pub language: Option<Language>,
    pub title: Option<String>,
    pub board: Option<String>,
    /// `at:` from the file's front matter.
    pub at: Option<String>,
}

/// Front matter of a Markdown draft.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    to: Option<OneOrMany>,
    at: Option<String>,
    lang: Option<String>,
    thread: Option<bool>,
    numbering: Option<bool>,
    title: Option<String>,
    board: Option<String>,
    media: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Splits `---` front matter from a Markdown body.
pub fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

pub fn parse_targets(raw: &[String]) -> CliResult<Vec<Target>> {
    let mut targets: Vec<Target> = Vec::new();
    for item in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (platform, account) = match item.split_once(':') {
            Some((p, a)) if !a.trim().is_empty() => {
                (p, Some(a.trim().trim_start_matches('@').to_string()))
            }
            Some((p, _)) => (p, None),
            None => (item, None),
        };
        let platform: Platform = platform
            .parse()
            .map_err(|e: psn_domain::platform::UnknownPlatform| invalid(e.to_string()))?;
        let target = Target { platform, account };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Err(invalid(
            "say where to post with --to PLATFORM[,PLATFORM…] (x, linkedin, instagram, facebook, threads, tiktok, youtube, pinterest, bluesky, mastodon)",
        ));
    }
    Ok(targets)
}

/// Probes and cleans one attached file (nothing is written), and converts a video to
/// H.264/AAC MP4 when a target platform needs it and ffmpeg is installed. Without ffmpeg the
/// platform rules refuse the file with a hint (`<platform>.video_format`).
fn media_file(
    path: &Path,
    alt: Option<String>,
    platforms: &[Platform],
) -> CliResult<(MediaFile, Prepared)> {
    let ffprobe = find_tool("ffprobe");
    let mut prepared = Library::prepare(path, ffprobe.as_deref()).map_err(media_error)?;
    let summary = prepared.summary(None);
    if platforms.iter().any(|&p| needs_transcode(p, &summary))
        && let Some(ffmpeg) = find_tool("ffmpeg")
    {
        eprintln!(
            "psn: converting {} to H.264/AAC MP4 with ffmpeg (a target platform needs it)",
            path.display()
        );
        prepared = prepared.transcode(&ffmpeg).map_err(media_error)?;
    }
    let file = MediaFile {
        path: prepared.source.clone(),
        sha256: None,
        original: None,
        summary: prepared.summary(alt),
    };
    Ok((file, prepared))
}

/// Maps a media-library error to the CLI's: the caller's file is invalid input (exit 2).
pub fn media_error(e: psn_media::MediaError) -> CliError {
    if e.is_invalid_input() {
        invalid(e.to_string())
    } else {
        CliError::Failed(anyhow::anyhow!(e.to_string()))
    }
}

/// Reads the text, targets and options from the arguments and, with `--file`, the draft's
/// front matter (flags win over front matter). `require_targets` is false for `edit`.
pub fn compose(args: &ComposeArgs, require_targets: bool) -> CliResult<Composed> {
    let (file_text, front) = match &args.file {
        Some(path) => {
            if args.text.is_some() {
                return Err(invalid(
                    "give the text either as an argument or with --file, not both",
                ));
            }
            let raw = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            let (front, body) = split_front_matter(&raw);
            let front: FrontMatter = match front {
                Some(y) if !y.trim().is_empty() => serde_saphyr::from_str(y).map_err(|e| {
                    invalid(format!(
                        "the front matter of {} is not valid: {e}",
                        path.display()
                    ))
                })?,
                _ => FrontMatter::default(),
            };
            (Some(body.trim().to_string()), front)
        }
        None => (None, FrontMatter::default()),
    };
    let text = match (&args.text, file_text) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        (None, None) => String::new(),
    };
    let raw_targets = if args.to.is_empty() {
        front.to.map(OneOrMany::into_vec).unwrap_or_default()
    } else {
        args.to.clone()
    };
    let targets = if require_targets || !raw_targets.is_empty() {
        parse_targets(&raw_targets)?
    } else {
        Vec::new()
    };
    let lang = args.lang.clone().or(front.lang);
    let language = lang
        .map(|l| l.parse::<Language>().map_err(|e| invalid(e.to_string())))
        .transpose()?;
    let mut paths: Vec<PathBuf> = args.media.clone();
    if paths.is_empty()
        && let (Some(m), Some(file)) = (front.media, &args.file)
    {
        let base = file.parent().unwrap_or(Path::new("."));
        paths = m.into_vec().into_iter().map(|p| base.join(p)).collect();
    }
    if args.alt.len() > paths.len() {
        return Err(invalid(format!(
            "{} --alt text(s) for {} media file(s): give one --alt per --media, in order",
            args.alt.len(),
            paths.len()
        )));
    }
    let platforms = platforms_of(&targets);
    let (media, prepared): (Vec<MediaFile>, Vec<Prepared>) = paths
        .iter()
        .enumerate()
        .map(|(i, p)| media_file(p, args.alt.get(i).cloned(), &platforms))
        .collect::<CliResult<Vec<_>>>()?
        .into_iter()
        .unzip();
    if text.trim().is_empty() && media.is_empty() {
        return Err(invalid(
            "the post is empty: give some text (or --file, or --media)",
        ));
    }
    Ok(Composed {
        text,
        targets,
        thread: args.thread || front.thread.unwrap_or(false),
        numbering: !args.no_numbering && front.numbering.unwrap_or(true),
        media,
        prepared,
        language,
        title: args.title.clone().or(front.title),
        board: args.board.clone().or(front.board),
        at: front.at,
    })
}

/// Runs every platform's rules once per distinct platform among the targets.
pub fn check(c: &Composed, platforms: &[Platform]) -> Vec<ValidationReport> {
    let summaries: Vec<MediaSummary> = c.media.iter().map(|m| m.summary.clone()).collect();
    platforms
        .iter()
        .map(|&platform| {
            validate(&ValidationRequest {
                platform,
                text: &c.text,
                thread: c.thread,
                numbering: c.numbering,
                media: &summaries,
                title: c.title.as_deref(),
                board: c.board.as_deref(),
                char_limit_override: None,
            })
        })
        .collect()
}

/// The distinct platforms of `targets`, in order.
pub fn platforms_of(targets: &[Target]) -> Vec<Platform> {
    let mut out = Vec::new();
    for t in targets {
        if !out.contains(&t.platform) {
            out.push(t.platform);
        }
    }
    out
}

/// Prints validation reports for people.
pub fn print_reports(reports: &[ValidationReport]) {
    for r in reports {
        let mark = if r.valid { "ok  " } else { "FAIL" };
        println!(
            "{mark} {:<10} {} of {} {}{}",
            r.platform.as_str(),
            r.length,
            r.limit,
            r.unit,
            if r.segments.len() > 1 {
                format!(", thread of {} segments", r.segments.len())
            } else {
                String::new()
            }
        );
        for issue in &r.issues {
            println!("     [{}] {}", issue.rule, issue.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_split_from_the_body() {
        let (front, body) = split_front_matter("---\nto: x\nat: +1h\n---\nHello\n---\nWorld\n");
        assert_eq!(front, Some("to: x\nat: +1h\n"));
        assert_eq!(body, "Hello\n---\nWorld\n");
        assert_eq!(split_front_matter("Hello").0, None);
    }

    #[test]
    fn targets_take_accounts_and_drop_duplicates() {
        let t = parse_targets(&["x".into(), "bluesky:@me.bsky.social".into(), "x".into()]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].account.as_deref(), Some("me.bsky.social"));
        assert!(parse_targets(&["myspace".into()]).is_err());
        assert!(parse_targets(&[]).is_err());
    }
}
