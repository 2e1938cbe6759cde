//! Asking each registry, as a node would, whether it has a manifest: the distribution API's
//! `HEAD`/`GET /v2/<name>/manifests/<reference>` with containers/image's `Accept` header, Basic
//! or Bearer credentials from an auth file, and an insecure registry over unverified TLS, then
//! plain HTTP. Only reads, only of manifests, tag lists and (for `--arch`) config blobs: nothing
//! is pulled and nothing is written. The CLI's `audit` and the collector's periodic audit share
//! it; the verdicts come from the pure `mirrorscope_core::audit`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::{header, HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;
use mirrorscope_core::audit::auth::{parse_challenges, AuthFile};
use mirrorscope_core::audit::manifest;
use mirrorscope_core::audit::{Planned, Probe, ProbeStatus};
use mirrorscope_core::reference::ImageReference;
use tokio::sync::{OnceCell, Semaphore};

/// Manifests and lists are small; anything past this is not one.
const MAX_MANIFEST: usize = 4 << 20;
const MAX_CONFIG: usize = 1 << 20;
const MAX_TOKEN: usize = 64 << 10;
const MAX_ERROR_BODY: usize = 64 << 10;
/// A layer read for a file in it (a release payload's manifests layer is a few MiB).
const MAX_LAYER: usize = 256 << 20;
/// What a layer may unpack to.
const MAX_UNPACKED: u64 = 1 << 30;
const RATE_LIMIT_RETRIES: u32 = 3;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Probes every planned image, the prober's `concurrency` at a time, calling `done` after each.
pub async fn probe_all(prober: &Prober, planned: &mut [Planned], done: &(dyn Fn() + Sync)) {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(planned.iter_mut())
        .for_each_concurrent(prober.opts.concurrency.max(1), |p| async move {
            prober.probe_planned(p).await;
            done();
        })
        .await;
}

pub struct Options {
    pub auth: AuthFile,
    /// DER CA certificates trusted in addition to the system's (`--ca-file`, the Image
    /// config's additionalTrustedCA).
    pub ca: Option<Vec<Vec<u8>>>,
    /// DER CA certificates trusted for one registry (`host` or `host:port`) only, as a node
    /// trusts `/etc/docker/certs.d/HOST/` (what the MCO writes from additionalTrustedCA).
    pub ca_by_host: HashMap<String, Vec<Vec<u8>>>,
    /// Architectures every served manifest must offer (`--arch`).
    pub arch: Vec<String>,
    pub timeout: Duration,
    /// Images probed at once; half of that (at least 2) on one registry host.
    pub concurrency: usize,
}

/// The DER certificates of a PEM bundle.
pub fn pem_certs(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// A PEM CA file (`--ca-file`, `--audit-ca-file`); errors name the file.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    pem_certs(&pem).map_err(|e| format!("{shown}: {e}"))
}

/// A containers auth file or `.dockerconfigjson` (`--authfile`, `--audit-authfile`).
pub fn read_auth_file(path: &std::path::Path) -> Result<AuthFile, String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    AuthFile::parse(&shown, &text).map_err(|e| e.to_string())
}

/// One scheme and authority to talk to, and whether its certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Base {
    scheme: &'static str,
    authority: String,
    verify: bool,
}

impl Base {
    fn shown(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The base and path of an absolute http(s) URL (a redirect, a token realm), checked as
    /// strictly as `verify` says.
    fn of_url(uri: &http::Uri, verify: bool) -> Option<(Base, String)> {
        let scheme = match uri.scheme_str()? {
            "http" => "http",
            "https" => "https",
            _ => return None,
        };
        let base = Base {
            scheme,
            authority: uri.authority()?.to_string(),
            verify,
        };
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        Some((base, path))
    }
}

/// Where Docker Hub's registry API answers for `docker.io` references.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// What a node asks for: the API host, the repository and the tag or digest.
#[derive(Clone, Debug)]
struct Target {
    /// As the reference names it (`docker.io`), for credentials and for messages.
    domain: String,
    /// Where the API lives (`registry-1.docker.io` for `docker.io`).
    api_host: String,
    repo: String,
    reference: String,
}

impl Target {
    fn parse(reference: &str) -> Result<Target, String> {
        let r = ImageReference::parse_docker(reference).map_err(|e| e.to_string())?;
        let domain = r.domain().to_string();
        let api_host = match domain.as_str() {
            "docker.io" => DOCKER_HUB_API.to_string(),
            d => d.to_string(),
        };
        // containers/image pulls `repo:tag@digest` by its digest.
        let reference = r.digest().or(r.tag()).unwrap_or("latest").to_string();
        Ok(Target {
            domain,
            api_host,
            repo: r.path().to_string(),
            reference,
        })
    }

    fn with_repo(&self, repo: &str) -> Target {
        Target {
            repo: repo.to_string(),
            ..self.clone()
        }
    }

    /// A digest (`algorithm:hex`) rather than a tag, which never holds a colon.
    fn by_digest(&self) -> bool {
        self.reference.contains(':')
    }

    fn shown(&self) -> String {
        let sep = if self.by_digest() { '@' } else { ':' };
        format!("{}/{}{sep}{}", self.domain, self.repo, self.reference)
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Failure = (ProbeStatus, String);

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The media type of an answer, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default()
}
type ProbeCell = Arc<OnceCell<Probe>>;
type RepositoryCell = Arc<OnceCell<bool>>;

pub struct Prober {
    opts: Options,
    proxy: ProxyEnv,
    clients: Mutex<HashMap<Base, kube::Client>>,
    /// `Authorization` values by (registry authority, repository).
    authorizations: Mutex<HashMap<(String, String), String>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// By (reference, insecure): each source is asked once per run.
    probes: Mutex<HashMap<(String, bool), ProbeCell>>,
    native_roots: std::sync::OnceLock<Vec<Vec<u8>>>,
    /// The scheme (and verification) that answered, by API host.
    answered: Mutex<HashMap<String, Base>>,
    /// Whether a repository exists, asked once per run however many of its tags are missing.
    repositories: Mutex<HashMap<(Base, String), RepositoryCell>>,
}

impl Prober {
    pub fn new(opts: Options) -> Prober {
        Prober {
            opts,
            proxy: ProxyEnv::from_env(),
            clients: Mutex::default(),
            authorizations: Mutex::default(),
            limits: Mutex::default(),
            probes: Mutex::default(),
            repositories: Mutex::default(),
            answered: Mutex::default(),
            native_roots: std::sync::OnceLock::new(),
        }
    }

    /// Probes the sources of one image in the node's order, stopping at the first that has it
    /// (a node stops there too); blocked sources are never asked.
    pub async fn probe_planned(&self, planned: &mut Planned) {
        let mut served = false;
        for s in &mut planned.sources {
            if s.blocked {
                continue;
            }
            if served {
                s.probe = Some(Probe::not_tried());
                continue;
            }
            let probe = self.probe(&s.reference, s.insecure).await;
            // A manifest that misses a wanted architecture still ends the node's walk: it
            // fails the pull instead of trying the next source.
            served = probe.status == ProbeStatus::Present;
            s.probe = Some(probe);
        }
    }

    /// One source, asked once per run however many images share it.
    pub async fn probe(&self, reference: &str, insecure: bool) -> Probe {
        let cell = {
            let mut probes = lock(&self.probes);
            probes
                .entry((reference.to_string(), insecure))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| self.probe_uncached(reference, insecure))
            .await
            .clone()
    }

    async fn probe_uncached(&self, reference: &str, insecure: bool) -> Probe {
        let target = match Target::parse(reference) {
            Ok(t) => t,
            Err(e) => return Probe::with_status(ProbeStatus::Error, Some(e)),
        };
        let limit = self.limit(&target.api_host);
        let Ok(_permit) = limit.acquire_owned().await else {
            return Probe::with_status(ProbeStatus::Error, Some("probe cancelled".into()));
        };
        let bases = self.bases(&target, insecure);
        let mut last = None;
        for base in &bases {
            match self.probe_at(base, &target).await {
                Err((s @ (ProbeStatus::Unreachable | ProbeStatus::TlsError), d)) => {
                    last = Some((s, format!("{}: {d}", base.shown())));
                }
                answer => {
                    lock(&self.answered).insert(target.api_host.clone(), base.clone());
                    return answer.unwrap_or_else(|(s, d)| Probe::with_status(s, Some(d)));
                }
            }
        }
        let (s, d) = last.unwrap_or((ProbeStatus::Error, "no address to ask".into()));
        Probe::with_status(s, Some(d))
    }

    /// Where to ask: HTTPS, and for an insecure source unverified HTTPS then HTTP. Like
    /// containers/image's ping, the scheme that answered is remembered per host, so an insecure
    /// plain-HTTP mirror costs one failed TLS handshake per run, not one per image.
    fn bases(&self, target: &Target, insecure: bool) -> Vec<Base> {
        let https = Base {
            scheme: "https",
            authority: target.api_host.clone(),
            verify: !insecure,
        };
        let mut bases = vec![https];
        if insecure {
            bases.push(Base {
                scheme: "http",
                authority: target.api_host.clone(),
                verify: false,
            });
        }
        match lock(&self.answered).get(&target.api_host).cloned() {
            Some(b) if bases.contains(&b) => vec![b],
            _ => bases,
        }
    }

    /// The file at `path` in the image a node would pull for `planned` (the first source that
    /// serves its manifest; a list's child for `architecture`), searched from the top layer down.
    pub async fn read_file(
        &self,
        planned: &Planned,
        path: &str,
        architecture: &str,
    ) -> Result<Vec<u8>, String> {
        let mut misses = Vec::new();
        for s in planned.sources.iter().filter(|s| !s.blocked) {
            let target = Target::parse(&s.reference)?;
            for base in self.bases(&target, s.insecure) {
                let answer = match self.manifest(&base, &target, Method::GET).await {
                    Ok(a) => a,
                    Err((status, d)) => {
                        misses.push(format!("{} ({}: {d})", s.reference, status.as_str()));
                        continue;
                    }
                };
                if !answer.status.is_success() {
                    misses.push(format!(
                        "{} ({})",
                        s.reference,
                        error_detail(answer.status, &answer.body)
                    ));
                    break;
                }
                lock(&self.answered).insert(target.api_host.clone(), base.clone());
                return self
                    .file_from(&base, &target, answer, path, architecture)
                    .await;
            }
        }
        Err(format!(
            "no source serves {}: {}",
            planned.image,
            misses.join(", ")
        ))
    }

    async fn file_from(
        &self,
        base: &Base,
        target: &Target,
        mut answer: Answer,
        path: &str,
        architecture: &str,
    ) -> Result<Vec<u8>, String> {
        let shown = target.shown();
        let bad = |e: manifest::ManifestError| format!("{shown}: {e}");
        if manifest::is_list(&content_type(&answer.headers)) {
            let child = manifest::child_for(&answer.body, architecture)
                .map_err(bad)?
                .ok_or_else(|| format!("{shown}: the list has no linux/{architecture} image"))?;
            let child_target = Target {
                reference: child,
                ..target.clone()
            };
            answer = self
                .manifest(base, &child_target, Method::GET)
                .await
                .map_err(|(_, d)| d)?;
            if !answer.status.is_success() {
                return Err(format!(
                    "{shown}: {}",
                    error_detail(answer.status, &answer.body)
                ));
            }
        }
        let layers = manifest::layers(&answer.body).map_err(bad)?;
        for (digest, media_type) in layers.iter().rev() {
            let blob_path = format!("/v2/{}/blobs/{digest}", target.repo);
            let blob = self
                .get_following(base, target, &blob_path, MAX_LAYER)
                .await
                .map_err(|(_, d)| format!("{shown}: layer {digest}: {d}"))?;
            if !blob.status.is_success() {
                return Err(format!(
                    "{shown}: layer {digest}: {}",
                    error_detail(blob.status, &blob.body)
                ));
            }
            let tar = unpack(&blob.body, media_type)
                .map_err(|e| format!("{shown}: layer {digest}: {e}"))?;
            if let Some(file) = mirrorscope_core::audit::release::file_in_tar(&tar, path)
                .map_err(|e| format!("{shown}: layer {digest}: {e}"))?
            {
                return Ok(file);
            }
        }
        Err(format!("{shown}: no layer holds {path}"))
    }

    /// HEAD first, as containers/image does (Docker Hub does not count a HEAD against the pull
    /// rate limit); the body is fetched only when it must be read: a list's architectures, a
    /// single image's config for `--arch`, or a registry that does not answer HEAD.
    async fn probe_at(&self, base: &Base, t: &Target) -> Result<Probe, Failure> {
        let head = self.manifest(base, t, Method::HEAD).await?;
        let answer = match head.status {
            s if s.is_success() && !self.needs_body(&head) => head,
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => head,
            _ => self.manifest(base, t, Method::GET).await?,
        };
        let status = answer.status;
        if status.is_success() {
            return self.present(base, t, answer).await;
        }
        let detail = error_detail(status, &answer.body);
        match status {
            StatusCode::NOT_FOUND => {
                let mut probe =
                    Probe::with_status(self.absence(base, t, &answer).await, Some(detail));
                if probe.status == ProbeStatus::NameUnknown && t.api_host != DOCKER_HUB_API {
                    if let Some(plain) = t.repo.strip_prefix("library/") {
                        let alt = t.with_repo(plain);
                        if let Ok(a) = self.manifest(base, &alt, Method::HEAD).await {
                            if a.status.is_success() {
                                probe.present_without_library = Some(alt.shown());
                            }
                        }
                    }
                }
                Ok(probe)
            }
            StatusCode::UNAUTHORIZED => Err((ProbeStatus::Unauthorized, detail)),
            StatusCode::FORBIDDEN => Err((ProbeStatus::Denied, detail)),
            _ => Err((ProbeStatus::Error, detail)),
        }
    }

    fn needs_body(&self, head: &Answer) -> bool {
        let media_type = content_type(&head.headers);
        let digest_known = head.headers.contains_key(DOCKER_CONTENT_DIGEST);
        manifest::is_list(&media_type) || !self.opts.arch.is_empty() || !digest_known
    }

    async fn manifest(&self, base: &Base, t: &Target, method: Method) -> Result<Answer, Failure> {
        let path = format!("/v2/{}/manifests/{}", t.repo, t.reference);
        self.send_authorized(base, t, method, &path, Some(manifest::ACCEPT), MAX_MANIFEST)
            .await
    }

    /// A 404: is the repository there (a missing tag or digest) or not at all? Registries differ
    /// in the code they answer, so the tag list decides when the code does not.
    async fn absence(&self, base: &Base, t: &Target, answer: &Answer) -> ProbeStatus {
        let codes = manifest::error_codes(&answer.body);
        if codes.iter().any(|(c, _)| c == "NAME_UNKNOWN") {
            return ProbeStatus::NameUnknown;
        }
        let key = (base.clone(), t.repo.clone());
        let cell = lock(&self.repositories).entry(key).or_default().clone();
        let exists = cell
            .get_or_init(|| async {
                // One tag is enough to tell the repository is there (`n` pages the list).
                let path = format!("/v2/{}/tags/list?n=1", t.repo);
                !matches!(
                    self.send_authorized(base, t, Method::GET, &path, None, MAX_MANIFEST)
                        .await,
                    Ok(a) if a.status == StatusCode::NOT_FOUND
                )
            })
            .await;
        if *exists {
            ProbeStatus::ManifestUnknown
        } else {
            ProbeStatus::NameUnknown
        }
    }

    async fn present(&self, base: &Base, t: &Target, answer: Answer) -> Result<Probe, Failure> {
        let media_type = content_type(&answer.headers);
        let digest = if t.by_digest() {
            t.reference.clone()
        } else {
            answer
                .headers
                .get(DOCKER_CONTENT_DIGEST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "sha256:{}",
                        mirrorscope_core::hash::sha256_hex(&answer.body)
                    )
                })
        };
        let mut probe = Probe::with_status(ProbeStatus::Present, None);
        probe.digest = Some(digest);
        let malformed = |e: manifest::ManifestError| (ProbeStatus::Error, e.to_string());
        if manifest::is_list(&media_type) {
            probe.architectures = manifest::list_architectures(&answer.body).map_err(malformed)?;
        } else if !self.opts.arch.is_empty() {
            if let Some(config) = manifest::config_digest(&answer.body).map_err(malformed)? {
                let path = format!("/v2/{}/blobs/{config}", t.repo);
                let blob = self.get_following(base, t, &path, MAX_CONFIG).await?;
                if !blob.status.is_success() {
                    let detail = format!(
                        "config blob {config}: {}",
                        error_detail(blob.status, &blob.body)
                    );
                    return Err((ProbeStatus::Error, detail));
                }
                let arch = manifest::config_architecture(&blob.body).map_err(malformed)?;
                probe.architectures = vec![arch];
            }
        }
        if !self.opts.arch.is_empty() && !probe.architectures.is_empty() {
            probe.missing_architectures =
                manifest::missing_architectures(&probe.architectures, &self.opts.arch);
        }
        probe.media_type = Some(media_type).filter(|m| !m.is_empty());
        Ok(probe)
    }

    /// A blob GET that follows one redirect (registries hand blobs to object storage).
    async fn get_following(
        &self,
        base: &Base,
        t: &Target,
        path: &str,
        limit: usize,
    ) -> Result<Answer, Failure> {
        let a = self
            .send_authorized(base, t, Method::GET, path, None, limit)
            .await?;
        if !a.status.is_redirection() {
            return Ok(a);
        }
        let Some(location) = a
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(a);
        };
        let uri: http::Uri = location
            .parse()
            .map_err(|_| (ProbeStatus::Error, format!("bad redirect {location:?}")))?;
        // A relative Location stays on the registry.
        let (to, path) =
            Base::of_url(&uri, base.verify).unwrap_or_else(|| (base.clone(), location.to_string()));
        // Storage URLs carry their own signature: no registry credentials go there.
        self.send(&to, Method::GET, &path, None, None, limit).await
    }

    /// A GET with the registry's credentials: a 401 with a challenge gets one retry with Basic
    /// credentials or a Bearer token for the repository's pull scope.
    async fn send_authorized(
        &self,
        base: &Base,
        t: &Target,
        method: Method,
        path: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Answer, Failure> {
        let key = (base.authority.clone(), t.repo.clone());
        let known = lock(&self.authorizations).get(&key).cloned();
        let a = self
            .send(base, method.clone(), path, accept, known.as_deref(), limit)
            .await?;
        if a.status != StatusCode::UNAUTHORIZED {
            return Ok(a);
        }
        let Some(authorization) = self.authorize(base, t, &a).await? else {
            return Ok(a);
        };
        if known.as_deref() == Some(authorization.as_str()) {
            return Ok(a);
        }
        lock(&self.authorizations).insert(key, authorization.clone());
        self.send(base, method, path, accept, Some(&authorization), limit)
            .await
    }

    /// The `Authorization` value a challenge asks for, when we can give one.
    async fn authorize(
        &self,
        base: &Base,
        t: &Target,
        a: &Answer,
    ) -> Result<Option<String>, Failure> {
        let challenges: Vec<_> = a
            .headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let creds = self.opts.auth.lookup(&format!("{}/{}", t.domain, t.repo));
        let basic = creds.map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.params.get("realm") else {
                return Ok(None);
            };
            let scope = format!("repository:{}:pull", t.repo);
            let mut pairs = vec![("scope", Some(scope))];
            if let Some(service) = bearer.params.get("service") {
                pairs.insert(0, ("service", Some(service.clone())));
            }
            let query = mirrorscope_core::query::build(&pairs);
            let url = if realm.contains('?') {
                format!("{realm}&{}", query.trim_start_matches('?'))
            } else {
                format!("{realm}{query}")
            };
            let uri: http::Uri = url.parse().map_err(|_| {
                (
                    ProbeStatus::Error,
                    format!("token realm {realm:?} is not a URL"),
                )
            })?;
            let Some((realm_base, path)) = Base::of_url(&uri, base.verify) else {
                return Err((
                    ProbeStatus::Error,
                    format!("token realm {realm:?} is not an http(s) URL"),
                ));
            };
            let answer = self
                .send(
                    &realm_base,
                    Method::GET,
                    &path,
                    None,
                    basic.as_deref(),
                    MAX_TOKEN,
                )
                .await?;
            if !answer.status.is_success() {
                let detail = format!(
                    "token service {}: {}",
                    realm_base.shown(),
                    error_detail(answer.status, &answer.body)
                );
                let status = if answer.status == StatusCode::UNAUTHORIZED {
                    ProbeStatus::Unauthorized
                } else {
                    ProbeStatus::Denied
                };
                return Err((status, detail));
            }
            #[derive(serde::Deserialize)]
            struct Token {
                token: Option<String>,
                access_token: Option<String>,
            }
            let token: Token = serde_json::from_slice(&answer.body)
                .map_err(|e| (ProbeStatus::Error, format!("token service answer: {e}")))?;
            return Ok(token
                .token
                .or(token.access_token)
                .map(|t| format!("Bearer {t}")));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return Ok(basic);
        }
        Ok(None)
    }

    /// One request, bounded in time and size, with rate-limit answers waited out a few times.
    async fn send(
        &self,
        base: &Base,
        method: Method,
        path: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Answer, Failure> {
        let client = self.client(base)?;
        let mut attempt = 0;
        loop {
            let mut req = http::Request::builder().method(method.clone()).uri(path);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(a) = authorization {
                req = req.header(header::AUTHORIZATION, a);
            }
            let req = req
                .body(kube::client::Body::empty())
                .map_err(|e| (ProbeStatus::Error, format!("{}{path}: {e}", base.shown())))?;
            let timeout = self.opts.timeout;
            let sent = tokio::time::timeout(timeout, async {
                let resp = client.send(req).await.map_err(classify)?;
                let (parts, body) = resp.into_parts();
                let limit = if parts.status.is_success() {
                    limit
                } else {
                    MAX_ERROR_BODY
                };
                let body = http_body_util::Limited::new(body, limit)
                    .collect()
                    .await
                    .map_err(|e| (ProbeStatus::Error, format!("reading the answer: {e}")))?
                    .to_bytes()
                    .to_vec();
                Ok::<_, Failure>(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            })
            .await
            .map_err(|_| {
                (
                    ProbeStatus::Unreachable,
                    format!("no answer within {timeout:?}"),
                )
            })??;
            if sent.status != StatusCode::TOO_MANY_REQUESTS || attempt >= RATE_LIMIT_RETRIES {
                return Ok(sent);
            }
            attempt += 1;
            let wait = sent
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            tokio::time::sleep(wait).await;
        }
    }

    fn client(&self, base: &Base) -> Result<kube::Client, Failure> {
        if let Some(c) = lock(&self.clients).get(base) {
            return Ok(c.clone());
        }
        let fail = |e: String| (ProbeStatus::Error, format!("{}: {e}", base.shown()));
        let uri: http::Uri = base
            .shown()
            .parse()
            .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.accept_invalid_certs = !base.verify;
        config.root_cert = self.roots(&base.authority);
        config.connect_timeout = Some(self.opts.timeout);
        config.read_timeout = Some(self.opts.timeout);
        config.default_retry = false;
        config.proxy_url = self.proxy.for_base(base);
        let client = kube::Client::try_from(config).map_err(|e| fail(e.to_string()))?;
        lock(&self.clients).insert(base.clone(), client.clone());
        Ok(client)
    }

    /// The system's roots plus the extra CAs for `authority`; `None` (the platform verifier,
    /// system roots alone) when none apply. The system's roots are read once per run.
    fn roots(&self, authority: &str) -> Option<Vec<Vec<u8>>> {
        let for_host = self.opts.ca_by_host.get(authority);
        if self.opts.ca.is_none() && for_host.is_none() {
            return None;
        }
        let native = self.native_roots.get_or_init(|| {
            rustls_native_certs::load_native_certs()
                .certs
                .into_iter()
                .map(|c| c.to_vec())
                .collect()
        });
        let mut all = native.clone();
        all.extend(self.opts.ca.iter().flatten().cloned());
        all.extend(for_host.into_iter().flatten().cloned());
        Some(all)
    }

    fn limit(&self, host: &str) -> Arc<Semaphore> {
        lock(&self.limits)
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new((self.opts.concurrency / 2).max(2))))
            .clone()
    }
}

/// A layer's tar: gzip-compressed (what registries store), or plain.
fn unpack(blob: &[u8], media_type: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    if media_type.contains("zstd") {
        return Err("zstd-compressed layers are not read".into());
    }
    if !blob.starts_with(&[0x1f, 0x8b]) {
        return Ok(blob.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .take(MAX_UNPACKED)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-written: every update is one insert.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `HTTP 404: MANIFEST_UNKNOWN manifest unknown`, from a registry's error body.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    let codes = manifest::error_codes(body);
    match codes.first() {
        Some((code, message)) => format!("HTTP {}: {code} {message}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// A failed request: a certificate problem, or no way to reach the registry.
fn classify(e: kube::Error) -> Failure {
    // Layers repeat their inner error's text; keep each distinct part once.
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.retain(|p| !t.contains(p.as_str()));
            parts.push(t);
        }
        source = s.source();
    }
    let text = parts.join(": ");
    let lower = text.to_ascii_lowercase();
    let tls = [
        "certificate",
        "tls",
        "handshake",
        "invalidcontenttype",
        "corrupt message",
    ];
    if tls.iter().any(|k| lower.contains(k)) {
        (ProbeStatus::TlsError, text)
    } else {
        (ProbeStatus::Unreachable, text)
    }
}

/// `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, read as containers/image (Go's net/http) reads them.
#[derive(Debug, Default)]
struct ProxyEnv {
    https: Option<http::Uri>,
    http: Option<http::Uri>,
    no_proxy: Vec<String>,
}

impl ProxyEnv {
    fn from_env() -> ProxyEnv {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let uri = |v: Option<String>| {
            v.and_then(|v| {
                let v = if v.contains("://") {
                    v
                } else {
                    format!("http://{v}")
                };
                v.parse::<http::Uri>().ok()
            })
        };
        ProxyEnv {
            https: uri(var(&["HTTPS_PROXY", "https_proxy"])),
            http: uri(var(&["HTTP_PROXY", "http_proxy"])),
            no_proxy: var(&["NO_PROXY", "no_proxy"])
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    fn for_base(&self, base: &Base) -> Option<http::Uri> {
        let host = base
            .authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(base.authority.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let exempt = self.no_proxy.iter().any(|n| {
            let n = n.rsplit_once(':').map_or(n.as_str(), |(h, _)| h);
            n == "*"
                || host == n.trim_start_matches('.')
                || host.ends_with(&format!(".{}", n.trim_start_matches('.')))
        });
        if exempt {
            return None;
        }
        match base.scheme {
            "https" => self.https.clone(),
            _ => self.http.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_ask_the_api_host_by_digest_when_there_is_one() {
        let t = Target::parse("docker.io/library/nginx:1.25").unwrap();
        assert_eq!(
            (t.api_host.as_str(), t.repo.as_str(), t.reference.as_str()),
            ("registry-1.docker.io", "library/nginx", "1.25")
        );
        assert_eq!(t.shown(), "docker.io/library/nginx:1.25");
        let d = format!("sha256:{}", "a".repeat(64));
        let t = Target::parse(&format!("m.example:5000/ns/app@{d}")).unwrap();
        assert_eq!(
            (t.api_host.as_str(), t.reference.as_str()),
            ("m.example:5000", d.as_str())
        );
        assert_eq!(
            t.with_repo("app").shown(),
            format!("m.example:5000/app@{d}")
        );
    }

    #[test]
    fn ca_and_auth_files_that_do_not_read_name_the_file() {
        assert_eq!(
            pem_certs(b"not a certificate").unwrap_err(),
            "no CERTIFICATE block"
        );
        let dir = std::env::temp_dir().join(format!("mirrorscope-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "{}").unwrap();
        let e = read_ca_file(&junk).unwrap_err();
        assert_eq!(e, format!("{}: no CERTIFICATE block", junk.display()));
        let e = read_ca_file(&dir.join("missing.pem")).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: ", dir.join("missing.pem").display())),
            "{e}"
        );
        let e = read_auth_file(&dir.join("missing.json")).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: ", dir.join("missing.json").display())),
            "{e}"
        );
        std::fs::write(&junk, "[").unwrap();
        let e = read_auth_file(&junk).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: not a containers auth file", junk.display())),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_proxy_exempts_hosts_domains_and_everything() {
        let env = ProxyEnv {
            https: "http://127.0.0.1:9".parse().ok(),
            http: None,
            no_proxy: vec![
                "127.0.0.1".into(),
                ".corp.example".into(),
                "localhost:5000".into(),
            ],
        };
        let base = |a: &str| Base {
            scheme: "https",
            authority: a.into(),
            verify: true,
        };
        assert_eq!(env.for_base(&base("127.0.0.1:5000")), None);
        assert_eq!(env.for_base(&base("m.corp.example")), None);
        assert_eq!(env.for_base(&base("localhost:5001")), None);
        assert!(env.for_base(&base("quay.io")).is_some());
        let http = Base {
            scheme: "http",
            authority: "quay.io".into(),
            verify: false,
        };
        assert_eq!(env.for_base(&http), None);
    }
}
