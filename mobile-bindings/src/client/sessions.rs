//! Sessions: enrollment, device login, single-flight token refresh, logout.

use super::*;

impl PeerbridgeClient {
    /// Enrolls this device with a one-time invite from the clinic (the bare code, or the
    /// invite link, whose clinic key this device then pins); the device key is registered
    /// and a session starts.
    pub async fn enroll(&self, invite_code: &str, device_label: &str) -> Result<SessionInfo> {
        if self.account()?.is_some() {
            return Err(SdkError::InvalidInput(
                "this device is already enrolled".into(),
            ));
        }
        let link = crate::authority::parse_invite(invite_code)?;
        let body = InviteRedeem {
            code: link.code,
            device: self.registration(device_label),
        };
        let s: Session = self
            .api
            .call(Method::POST, "/v1/invites/redeem", None, Some(&body))
            .await?
            .json()?;
        let info = self.start_session(s)?;
        // The clinic's escalation authority as the inviting HP's device knew it: pinned
        // before the server is asked anything about it.
        if let (Some(key), Some(clinic)) = (link.authority, info.clinic_id) {
            self.pin_authority(clinic, &key)?;
        }
        Ok(info)
    }

    /// Stores a new session's account and tokens.
    pub(crate) fn start_session(&self, s: Session) -> Result<SessionInfo> {
        self.save_account(Account::from_session(s))?;
        self.session_info()
    }

    /// A new phone joins an account: another signed-in device registered this device's
    /// public key ([`Self::device_public_key`]) with `add_device` and passed on the device
    /// id (e.g. by QR code); this device then proves its key and the session starts.
    pub async fn link_device(&self, device_id: Uuid) -> Result<SessionInfo> {
        if self.account()?.is_some() {
            return Err(SdkError::InvalidInput(
                "this device is already enrolled".into(),
            ));
        }
        let _g = self.refresh_lock.lock().await;
        let s = self.device_session(device_id).await?;
        self.start_session(s)
    }

    /// Staff sign-in with password and authenticator code; registers this device's key with
    /// the account if it is new.
    pub async fn staff_login(
        &self,
        login: &str,
        password: &str,
        totp_code: &str,
        device_label: &str,
    ) -> Result<SessionInfo> {
        let body = PasswordLogin {
            login: login.to_owned(),
            password: password.to_owned(),
            totp_code: totp_code.to_owned(),
            device: self.registration(device_label),
        };
        let _g = self.refresh_lock.lock().await;
        let s: Session = self
            .api
            .call(Method::POST, "/v1/auth/password", None, Some(&body))
            .await?
            .json()?;
        self.save_account(Account::from_session(s))?;
        self.session_info()
    }

    /// Starts a new session with the device key (challenge–response). Needed only after the
    /// session ended; expiring tokens are refreshed transparently.
    pub async fn login(&self) -> Result<SessionInfo> {
        let _g = self.refresh_lock.lock().await;
        self.device_login_locked().await?;
        self.session_info()
    }

    /// Ends the session on the server and forgets its tokens (the enrollment stays).
    pub async fn logout(&self) -> Result<()> {
        let _g = self.refresh_lock.lock().await;
        let Some(mut a) = self.account()? else {
            return Ok(());
        };
        if let Some(t) = a.tokens.take() {
            let body = LogoutRequest {
                refresh_token: t.refresh_token,
            };
            match self
                .api
                .call(Method::POST, "/v1/auth/logout", None, Some(&body))
                .await
            {
                Ok(_) | Err(SdkError::Unauthenticated(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.save_account(a)
    }

    /// The signed-in account, if this device is enrolled.
    pub fn session(&self) -> Result<Option<SessionInfo>> {
        Ok(self.account()?.map(|a| SessionInfo {
            user_id: a.user_id,
            device_id: a.device_id,
            clinic_id: a.clinic_id,
            role: a.role,
            signed_in: a.tokens.is_some(),
            access_token_expires_at: a.tokens.map(|t| t.access_expires_at),
        }))
    }

    pub(crate) fn session_info(&self) -> Result<SessionInfo> {
        self.session()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))
    }

    pub(super) fn registration(&self, label: &str) -> DeviceRegistration {
        DeviceRegistration {
            public_key: b64(&self.device_key),
            label: label.to_owned(),
        }
    }

    /// With the refresh lock held: challenge–response login with the device key.
    pub(super) async fn device_login_locked(&self) -> Result<String> {
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        let s = self.device_session(a.device_id).await?;
        let token = s.access_token.clone();
        self.save_account(Account::from_session(s))?;
        Ok(token)
    }

    /// Challenge–response with the device key for `device_id`.
    pub(super) async fn device_session(&self, device_id: Uuid) -> Result<Session> {
        let ch: Challenge = self
            .api
            .call(
                Method::POST,
                "/v1/auth/challenge",
                None,
                Some(&ChallengeRequest { device_id }),
            )
            .await?
            .json()?;
        let signature = self
            .mls()?
            .identity()
            .sign_b64(&login_challenge_message(ch.challenge_id, &ch.nonce));
        let s: Session = self
            .api
            .call(
                Method::POST,
                "/v1/auth/device",
                None,
                Some(&DeviceLogin {
                    challenge_id: ch.challenge_id,
                    device_id,
                    signature,
                }),
            )
            .await?
            .json()?;
        Ok(s)
    }

    /// A current access token, refreshed first if it is about to expire.
    pub(crate) async fn access_token(&self) -> Result<String> {
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        match a.tokens {
            Some(t) if t.refresh_at_local > Utc::now() => Ok(t.access_token),
            Some(t) => self.refresh_after(&t.access_token).await,
            None => Err(SdkError::Unauthenticated(
                "signed out; call login() to start a new session".into(),
            )),
        }
    }

    /// Single-flight refresh: whoever gets the lock first refreshes; callers that were
    /// waiting with the same stale token get the new one. If the refresh token is no longer
    /// accepted (expired, revoked, reused after a lost response), the device key starts a
    /// new session, so an enrolled device never needs the user for this.
    pub(crate) async fn refresh_after(&self, stale: &str) -> Result<String> {
        let _g = self.refresh_lock.lock().await;
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        let Some(t) = a.tokens.clone() else {
            return Err(SdkError::Unauthenticated(
                "signed out; call login() to start a new session".into(),
            ));
        };
        if t.access_token != stale && t.refresh_at_local > Utc::now() {
            return Ok(t.access_token);
        }
        let body = RefreshRequest {
            refresh_token: t.refresh_token,
        };
        match self
            .api
            .call(Method::POST, "/v1/auth/refresh", None, Some(&body))
            .await
        {
            Ok(reply) => {
                let s: Session = reply.json()?;
                let token = s.access_token.clone();
                self.save_account(Account::from_session(s))?;
                return Ok(token);
            }
            Err(SdkError::Unauthenticated(_)) => {
                tracing::info!("refresh token no longer accepted; logging in with the device key");
            }
            Err(e) => return Err(e),
        }
        match self.device_login_locked().await {
            Err(e @ SdkError::Unauthenticated(_)) => {
                // The device key is refused too (e.g. the device was revoked): forget the
                // dead tokens so nothing keeps presenting them.
                let mut a = a;
                a.tokens = None;
                self.save_account(a)?;
                Err(e)
            }
            other => other,
        }
    }

    /// An authenticated request; on 401 the token is refreshed once and the request retried.
    pub(crate) async fn authed<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Reply> {
        let token = self.access_token().await?;
        match self
            .api
            .call(method.clone(), path, Some(&token), body)
            .await
        {
            Err(SdkError::Unauthenticated(_)) => {
                let token = self.refresh_after(&token).await?;
                self.api.call(method, path, Some(&token), body).await
            }
            other => other,
        }
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.authed::<()>(Method::GET, path, None).await?.json()
    }
}
