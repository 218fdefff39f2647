//! Site discovery: every resource path is under `/service/sites/<site>`.

use reqwest::Method;
use serde::Deserialize;

use super::{Body, DcsClient, DcsError};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub urn: String,
    pub uri: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
}

impl Site {
    /// The id part of the URN (`3F7B07E2`).
    pub fn id(&self) -> &str {
        super::urn::id_of(&self.urn)
    }
}

#[derive(Deserialize)]
struct SiteList {
    #[serde(default)]
    sites: Vec<Site>,
}

impl DcsClient {
    pub async fn list_sites(&self) -> Result<Vec<Site>, DcsError> {
        let url = self.url("/service/sites")?;
        let list: SiteList = self.call("list_sites", Method::GET, url, "sites", Body::None).await?;
        Ok(list.sites)
    }

    /// The configured site, or the first one VRM lists (one VRM usually manages one site).
    /// Looked up once per client.
    pub async fn site(&self) -> Result<Site, DcsError> {
        self.inner
            .site
            .get_or_try_init(|| async {
                let sites = self.list_sites().await?;
                let wanted = self.inner.config.site.as_deref();
                let found = match wanted {
                    Some(w) => sites
                        .into_iter()
                        .find(|s| s.id().eq_ignore_ascii_case(w) || s.name == w || s.urn == w),
                    None => sites.into_iter().next(),
                };
                found.ok_or_else(|| DcsError::NotFound {
                    operation: "list_sites",
                    what: format!("site {}", wanted.unwrap_or("(any)")),
                    fault: None,
                })
            })
            .await
            .cloned()
    }

    /// `/service/sites/<site>/<rest>`.
    pub(crate) async fn site_url(&self, rest: &str) -> Result<reqwest::Url, DcsError> {
        let site = self.site().await?;
        self.url(&format!("{}/{}", site.uri.trim_end_matches('/'), rest))
    }

    pub(crate) async fn site_id(&self) -> Result<String, DcsError> {
        Ok(self.site().await?.id().to_string())
    }
}
