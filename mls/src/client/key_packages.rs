//! Key packages: one-time, pseudonymous and last-resort.

use super::*;

impl Client {
    /// `n` one-time key packages, each with its hash reference. Their
    /// private keys stay in the store until a Welcome using them is processed.
    pub fn generate_key_packages(&mut self, n: usize) -> Result<Vec<GeneratedKeyPackage>> {
        self.transact(|c| {
            (0..n)
                .map(|_| c.new_key_package(false, CredentialKind::Device))
                .collect()
        })
    }

    /// `n` one-time pseudonymous key packages (for introductions): a fresh pseudonym and
    /// leaf key each, with the device's leaf binding for the server. There is no
    /// pseudonymous last-resort package: reusing one would link introductions.
    pub fn generate_pseudonymous_key_packages(
        &mut self,
        n: usize,
    ) -> Result<Vec<GeneratedKeyPackage>> {
        self.transact(|c| {
            (0..n)
                .map(|_| c.new_key_package(false, CredentialKind::Pseudonymous))
                .collect()
        })
    }

    /// A last-resort key package (RFC 9420 last_resort extension): the server hands it out
    /// when the one-time packages are exhausted; its keys survive being used.
    pub fn last_resort_key_package(&mut self) -> Result<GeneratedKeyPackage> {
        self.transact(|c| c.new_key_package(true, CredentialKind::Device))
    }

    pub(super) fn new_key_package(
        &self,
        last_resort: bool,
        kind: CredentialKind,
    ) -> Result<GeneratedKeyPackage> {
        let signer = self.new_signer()?;
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                &self.provider(),
                &signer,
                self.credential_for(&signer, kind, None),
            )
            .map_err(|e| self.mls_err(e))?;
        let kp = bundle.key_package();
        let hash_ref = kp
            .hash_ref(&self.crypto)
            .map_err(|e| self.mls_err(e))?
            .as_slice()
            .to_vec();
        let key_package = MlsMessageOut::from(kp.clone())
            .to_bytes()
            .map_err(|e| self.mls_err(e))?;
        let signature_key = signer.to_public_vec();
        Ok(GeneratedKeyPackage {
            key_package,
            hash_ref,
            last_resort,
            leaf_binding: (kind == CredentialKind::Pseudonymous)
                .then(|| self.leaf_binding(&signature_key)),
            signature_key,
        })
    }
}
