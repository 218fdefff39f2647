//! IMS: images by name, as the HCSMachine spec names them.

use reqwest::Method;
use serde::Deserialize;

use super::ecs::form_urlencoded;
use super::{Call, HcsClient, HcsError, Service};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: String,
}

impl HcsClient {
    /// Active images named exactly `name` (IMS matches the name exactly; several may share it).
    pub async fn find_images(&self, name: &str) -> Result<Vec<Image>, HcsError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            images: Vec<Image>,
        }
        let path = format!(
            "v2/cloudimages?{}",
            form_urlencoded(&[("name", name), ("status", "active")])
        );
        let list: List = self
            .call(Call::new(
                "list_images",
                Service::Ims,
                Method::GET,
                path,
                format!("image {name}"),
            ))
            .await?;
        Ok(list.images.into_iter().filter(|i| i.name == name).collect())
    }
}
