//! Key packages: keeping the server stocked with this device's one-time packages.

use super::*;

impl PeerbridgeClient {
    /// Uploads key packages when fewer than the server's `replenish_below` remain, and a
    /// last-resort package when none is held. Call after enrollment, at app start, and
    /// after joining conversations (the SDK also does it after accepting welcomes).
    pub async fn ensure_key_packages(&self) -> Result<KeyPackageStatus> {
        let status: KeyPackageStatus = self.get("/v1/key-packages/status").await?;
        let want = (status.replenish_below.saturating_mul(2)).min(100);
        let missing = if status.remaining < status.replenish_below {
            want.saturating_sub(status.remaining) as usize
        } else {
            0
        };
        // Parties of introductions also keep pseudonymous packages (no last resort: reusing
        // one would link their introductions).
        let party = self
            .account()?
            .is_some_and(|a| matches!(a.role, Role::Peer | Role::ServiceUser));
        let missing_pseudonymous =
            if party && status.pseudonymous_remaining < status.replenish_below {
                want.saturating_sub(status.pseudonymous_remaining) as usize
            } else {
                0
            };
        if missing == 0 && status.has_last_resort && missing_pseudonymous == 0 {
            return Ok(status);
        }
        let mut kps = Vec::with_capacity(missing + 1);
        let mut pseudonymous = Vec::with_capacity(missing_pseudonymous);
        {
            let mut mls = self.mls()?;
            for kp in mls.generate_key_packages(missing)? {
                kps.push(b64(&kp.key_package));
            }
            if !status.has_last_resort {
                kps.push(b64(&mls.last_resort_key_package()?.key_package));
            }
            for kp in mls.generate_pseudonymous_key_packages(missing_pseudonymous)? {
                pseudonymous.push(peerbridge_openapi::delivery::PseudonymousKeyPackage {
                    key_package: b64(&kp.key_package),
                    leaf_binding: b64(kp.leaf_binding.as_deref().unwrap_or_default()),
                });
            }
        }
        self.authed(
            Method::POST,
            "/v1/key-packages",
            Some(&KeyPackageUpload {
                key_packages: kps,
                pseudonymous,
            }),
        )
        .await?
        .json()
    }
}
