//! HTTP plumbing and scenario steps, so tests read as the story they check.

use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::auth::{Session, TotpProvisioning};
use peerbridge_openapi::clinics::{InviteCreated, StaffCreate, StaffCreated};
use peerbridge_openapi::signed::login_challenge_message;
use peerbridge_openapi::{Role, StaffRole};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestApp;

/// A response with its status, headers and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "unexpected body ({e}) for status {}: {}",
                self.status, self.text
            )
        })
    }

    /// The problem code, asserting the body is problem+json.
    pub fn code(&self) -> String {
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(
            ct, "application/problem+json",
            "status {} body {}",
            self.status, self.text
        );
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts status and problem code together.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.code(), code, "body: {}", self.text);
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        self
    }
}

/// A thin HTTP client.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                // Well under the server's keep-alive (actix: 5 s), so a pooled connection is
                // never reused just as the server closes it (hyper's IncompleteMessage).
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("http client"),
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let build = || {
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            rb
        };
        let resp = match build().send().await {
            // A read may be repeated: a connection the server closed under a loaded machine
            // is a transport hiccup, not the behaviour under test.
            Err(e) if method == reqwest::Method::GET && e.is_request() => {
                build().send().await.expect("request sent")
            }
            other => other.expect("request sent"),
        };
        Response {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    /// A request with a raw body and content type.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        let resp = rb.send().await.expect("request sent");
        Response {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    /// Like [`Client::request`] but a transport failure (e.g. a killed replica) is an `Err`.
    pub async fn try_post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Response, reqwest::Error> {
        let mut rb = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await?;
        Ok(Response {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await?,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(reqwest::Method::POST, path, token, Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(reqwest::Method::PUT, path, token, Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(reqwest::Method::DELETE, path, token, None)
            .await
    }

    /// A series of the server's `/metrics`; panics when the server does not export it.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", None).await.text;
        metric_value(&text, name).unwrap_or_else(|| panic!("{name} in /metrics"))
    }
}

/// A series' value in a Prometheus text exposition (the line `name value`).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

/// A staff member with a live session, their device and their second factor.
pub struct Staff {
    pub session: Session,
    pub device: DeviceIdentity,
    pub login: String,
    pub password: String,
    pub totp_secret: Vec<u8>,
}

impl Staff {
    pub fn token(&self) -> &str {
        &self.session.access_token
    }
}

/// A user enrolled by invite: session plus device key.
pub struct Enrolled {
    pub session: Session,
    pub device: DeviceIdentity,
}

impl Enrolled {
    pub fn token(&self) -> &str {
        &self.session.access_token
    }
}

pub fn device_json(d: &DeviceIdentity, label: &str) -> Value {
    json!({ "public_key": d.public_key_b64(), "label": label })
}

impl TestApp {
    /// The authenticator code for the *next* time step (the clock moves 30 s first, so two
    /// logins in a row never reuse a step).
    pub fn fresh_totp(&self, secret: &[u8]) -> String {
        self.clock.advance(chrono::Duration::seconds(30));
        peerbridge_server::auth::secrets::totp_code_at(secret, self.now_unix()).expect("totp")
    }

    /// The operator's day one: the admin CLI path creates the account, the person finishes
    /// setup over HTTP.
    pub async fn bootstrap_operator(&self) -> Staff {
        let login = format!("operator-{}@example.org", Uuid::new_v4().simple());
        let created = peerbridge_server::accounts::service::create_staff(
            &self.state,
            None,
            None,
            Role::Operator,
            &StaffCreate {
                role: StaffRole::Hp,
                login: login.clone(),
                display_name: "Ola Operatør".into(),
                phone: None,
            },
        )
        .await
        .expect("operator created");
        self.complete_setup(&created.setup_code, &login).await
    }

    /// Staff setup: password, TOTP enrolment, first device.
    pub async fn complete_setup(&self, setup_code: &str, login: &str) -> Staff {
        let c = self.client();
        let password = format!("pw-{}-long-enough", Uuid::new_v4().simple());
        let prov: TotpProvisioning = c
            .post(
                "/v1/staff/setup",
                None,
                json!({ "setup_code": setup_code, "password": password }),
            )
            .await
            .expect(200)
            .parse();
        let secret = totp_rs::Secret::Encoded(prov.totp_secret.clone())
            .to_bytes()
            .expect("base32 secret");
        let device = DeviceIdentity::generate();
        let session: Session = c
            .post(
                "/v1/staff/setup/complete",
                None,
                json!({
                    "setup_code": setup_code,
                    "totp_code": self.fresh_totp(&secret),
                    "device": device_json(&device, "Workstation"),
                }),
            )
            .await
            .expect(201)
            .parse();
        Staff {
            session,
            device,
            login: login.to_owned(),
            password,
            totp_secret: secret,
        }
    }

    pub async fn create_clinic(&self, operator: &Staff, name: &str) -> Uuid {
        let r = self
            .client()
            .post(
                "/v1/clinics",
                Some(operator.token()),
                json!({ "name": name }),
            )
            .await;
        r.expect(201);
        r.parse::<peerbridge_openapi::clinics::Clinic>().id
    }

    /// Creates a staff account through the API and lets the person finish setup.
    pub async fn create_staff(
        &self,
        creator: &Staff,
        clinic: Uuid,
        role: &str,
        name: &str,
    ) -> Staff {
        let login = format!("{}-{}@clinic.example", role, Uuid::new_v4().simple());
        let created: StaffCreated = self
            .client()
            .post(
                &format!("/v1/clinics/{clinic}/staff"),
                Some(creator.token()),
                json!({ "role": role, "login": login, "display_name": name, "phone": "+47 912 34 567" }),
            )
            .await
            .expect(201)
            .parse();
        self.complete_setup(&created.setup_code, &login).await
    }

    pub async fn create_invite(&self, hp: &Staff, clinic: Uuid, role: &str) -> InviteCreated {
        self.client()
            .post(
                &format!("/v1/clinics/{clinic}/invites"),
                Some(hp.token()),
                json!({ "role": role, "display_name": "Kari Nordmann", "phone": "+47 400 00 000" }),
            )
            .await
            .expect(201)
            .parse()
    }

    pub async fn redeem(&self, code: &str) -> Enrolled {
        let device = DeviceIdentity::generate();
        let session: Session = self
            .client()
            .post(
                "/v1/invites/redeem",
                None,
                json!({ "code": code, "device": device_json(&device, "Phone") }),
            )
            .await
            .expect(201)
            .parse();
        Enrolled { session, device }
    }

    /// Challenge–response login with a device key.
    pub async fn device_login(&self, device_id: Uuid, device: &DeviceIdentity) -> Response {
        device_login_at(&self.client(), device_id, device).await
    }

    /// A clinic with an HP, ready for enrollment.
    pub async fn clinic_with_hp(&self, operator: &Staff, name: &str) -> (Uuid, Staff) {
        let clinic = self.create_clinic(operator, name).await;
        let hp = self
            .create_staff(operator, clinic, "hp", "Hanne Sykepleier")
            .await;
        (clinic, hp)
    }
}

/// Challenge–response login against any server (e.g. another replica).
pub async fn device_login_at(c: &Client, device_id: Uuid, device: &DeviceIdentity) -> Response {
    let ch = c
        .post(
            "/v1/auth/challenge",
            None,
            json!({ "device_id": device_id }),
        )
        .await;
    if ch.status != 200 {
        return ch;
    }
    let ch: peerbridge_openapi::auth::Challenge = ch.parse();
    let sig = device.sign_b64(&login_challenge_message(ch.challenge_id, &ch.nonce));
    c.post(
        "/v1/auth/device",
        None,
        json!({ "challenge_id": ch.challenge_id, "device_id": device_id, "signature": sig }),
    )
    .await
}
