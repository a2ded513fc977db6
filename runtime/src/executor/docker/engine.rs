//! The Docker Engine: connecting, removing the containers a crashed run left, resolving images.

use super::DockerExec;
use crate::error::{Error, Result};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// The label every container of a repo carries (its value names the repo).
pub const LABEL: &str = "io.ipfaas.repo";

/// A Docker Engine failure as a host error.
pub(super) fn engine_err(e: bollard::errors::Error) -> Error {
    Error::Io(std::io::Error::other(format!("Docker Engine: {e}")))
}

impl DockerExec {
    /// Removes every container labelled with this repo.
    pub async fn reap(&self) -> Result<usize> {
        let d = &self.inner.docker;
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{LABEL}={}", self.inner.label)],
        );
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = d.list_containers(Some(opts)).await.map_err(engine_err)?;
        for c in &list {
            if let Some(id) = &c.id {
                let _ = d
                    .remove_container(
                        id,
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
            }
        }
        Ok(list.len())
    }

    /// The image's ID; pulls it when missing and a registry answers.
    pub async fn resolve_image(&self, image: &str) -> Result<String> {
        let d = &self.inner.docker;
        if let Ok(i) = d.inspect_image(image).await
            && let Some(id) = i.id
        {
            return Ok(id);
        }
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let pull = async {
            let mut s = d.create_image(Some(opts), None, None);
            while let Some(r) = s.next().await {
                r?;
            }
            Ok::<_, bollard::errors::Error>(())
        };
        let why = match tokio::time::timeout(Duration::from_secs(60), pull).await {
            Ok(Ok(())) => match d.inspect_image(image).await {
                Ok(i) => {
                    return i
                        .id
                        .ok_or_else(|| Error::InvalidInput(format!("image {image:?} has no ID")));
                }
                Err(e) => e.to_string(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => "pull timed out".into(),
        };
        Err(Error::InvalidInput(format!(
            "image {image:?} is neither present in the local Docker Engine nor pullable ({why})"
        )))
    }
}
