//! PersistentVolumeClaims and PersistentVolumes → topology only.
//!
//! Storage objects are not events: nothing about them is a signal here
//! (their Events, such as `ProvisioningFailed`, arrive as Kubernetes Events).
//! They teach the [`crate::Topology`] which volume a claim is bound to
//! (`spec.volumeName`, or the volume's `spec.claimRef`) and which CSI driver
//! serves a volume (`spec.csi.driver`), so that records about a pod can name
//! the drivers its volumes need (the `csi_drivers` field, see the
//! [module docs](super)); a DELETED claim or volume is forgotten. The same
//! record then tells the object graph its class and volume
//! (`super::object`).

use super::error::{DecodeError, Result};
use super::wire::{Record, Spec, non_empty};
use super::{Ctx, Decoded, Decoder};

/// Which storage object a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StorageKind {
    Claim,
    Volume,
}

impl Decoder {
    pub(super) fn volume(
        &mut self,
        rec: &Record<'_>,
        kind: StorageKind,
        deleted: bool,
        ctx: Ctx,
    ) -> Result<Decoded> {
        let p = ctx.prefix;
        let meta = rec
            .metadata
            .as_deref()
            .ok_or_else(|| DecodeError::missing(p, "metadata"))?;
        let name = non_empty(&meta.name).ok_or_else(|| DecodeError::missing(p, "metadata.name"))?;
        let no_spec = Spec::default();
        let spec = rec.spec.as_deref().unwrap_or(&no_spec);
        match kind {
            StorageKind::Claim => {
                let namespace = non_empty(&meta.namespace)
                    .ok_or_else(|| DecodeError::missing(p, "metadata.namespace"))?;
                let volume = non_empty(&spec.volume_name).filter(|_| !deleted);
                self.topology
                    .observe_claim(namespace, name, volume.map(|v| v.as_ref()));
            }
            StorageKind::Volume => {
                let driver = spec
                    .csi
                    .as_ref()
                    .and_then(|c| non_empty(&c.driver))
                    .filter(|_| !deleted);
                self.topology
                    .observe_volume(name, driver.map(|d| d.as_ref()));
                // The binding as the volume sees it: known before the claim's
                // own record when the volume is watched first.
                let claim = spec.claim_ref.as_deref().and_then(|r| {
                    Some((
                        non_empty(&r.namespace)?.as_ref(),
                        non_empty(&r.name)?.as_ref(),
                    ))
                });
                if let Some((namespace, claim)) = claim
                    && !deleted
                    && self.topology.claim_volume(namespace, claim).is_none()
                {
                    self.topology.observe_claim(namespace, claim, Some(name));
                }
            }
        }
        Ok(Decoded::Events(0))
    }
}
