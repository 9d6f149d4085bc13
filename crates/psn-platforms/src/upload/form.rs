//! `multipart/form-data` bodies (RFC 7578), built in memory: media uploads send one file part
//! and a few text fields.

/// A multipart body under construction.
#[derive(Debug, Clone)]
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Default for Form {
    fn default() -> Self {
        Self::new()
    }
}

impl Form {
    pub fn new() -> Form {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Form {
            boundary: format!("psn-boundary-{nanos:x}"),
            body: Vec::new(),
        }
    }

    /// Adds a text field.
    pub fn text(mut self, name: &str, value: &str) -> Form {
        self.start_part();
        self.body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                quote(name)
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a file field.
    pub fn file(mut self, name: &str, file_name: &str, mime: &str, bytes: &[u8]) -> Form {
        self.start_part();
        self.body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                quote(name),
                quote(file_name),
                mime.replace(['\r', '\n'], "")
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The `Content-Type` header value and the body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }

    fn start_part(&mut self) {
        self.body
            .extend_from_slice(format!("--{}\r\n", self.boundary).as_bytes());
    }
}

fn quote(s: &str) -> String {
    s.replace(['\r', '\n'], "").replace('"', "%22")
}

/// Attaches `form` to `request`.
pub fn attach(request: reqwest::RequestBuilder, form: Form) -> reqwest::RequestBuilder {
    let (content_type, body) = form.finish();
    request
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
}
