//! An authorization completes only for the person who started it: the
//! OAuth login-CSRF ("mix-up") attack of issue 20, end to end, with browsers
//! that follow every redirect and a customer app that knows who is logged in.

use std::collections::HashMap;
use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use test_support::astra::{REDIRECT_URI, Store, World};

use super::problem;

/// The customer's app: its completion page confirms the handle for whoever
/// its session cookie says is logged in, as the README tells customers to.
async fn customer_app(port: u16, internal: String) -> (String, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let backend = web::Data::new((internal, reqwest::Client::new()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(backend.clone())
            .route("/done", web::get().to(completion_page))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (origin, handle)
}

async fn completion_page(
    req: HttpRequest,
    backend: web::Data<(String, reqwest::Client)>,
) -> HttpResponse {
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let logged_in = req.cookie("session").map(|c| c.value().to_owned());
    let (Some(user), Some("confirm")) = (logged_in, query.get("outcome").map(String::as_str))
    else {
        return HttpResponse::Ok().json(json!({ "query": query }));
    };
    let (internal, http) = backend.get_ref();
    let r = http
        .post(format!(
            "{internal}/astra/users/{user}/authorization/confirm"
        ))
        .json(&json!({ "handle": query["handle"] }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    HttpResponse::Ok().json(json!({ "confirmed_for": user, "status": status, "body": body }))
}

/// A browser: its own cookie jar (one session cookie for the customer's
/// origin), every redirect followed, forms submitted as a person would.
pub(super) struct Browser {
    http: reqwest::Client,
    customer: String,
    session: String,
    /// The registered redirect URI's origin and the service's public
    /// listener: what DNS would make the same host.
    service: (String, String),
}

impl Browser {
    pub(super) fn logged_into(customer: &str, user: &str, public: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            customer: customer.to_owned(),
            session: user.to_owned(),
            service: (
                url::Url::parse(REDIRECT_URI)
                    .unwrap()
                    .origin()
                    .ascii_serialization(),
                public.to_owned(),
            ),
        }
    }

    /// Sends `request`, following redirects; the final answer's URL and body.
    async fn navigate(
        &self,
        mut method: reqwest::Method,
        mut url: url::Url,
        mut form: Option<String>,
    ) -> (url::Url, String) {
        for _ in 0..10 {
            let mut request = self.http.request(method.clone(), url.clone());
            if url.as_str().starts_with(&self.customer) {
                request = request.header("cookie", format!("session={}", self.session));
            }
            if let Some(body) = form.take() {
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
            }
            let r = request.send().await.unwrap();
            if r.status().is_redirection() {
                let location = r.headers()["location"].to_str().unwrap();
                let (registered, public) = &self.service;
                url = url::Url::parse(&url.join(location).unwrap().as_str().replacen(
                    registered.as_str(),
                    public,
                    1,
                ))
                .unwrap();
                method = reqwest::Method::GET;
                continue;
            }
            return (url, r.text().await.unwrap());
        }
        panic!("too many redirects");
    }

    /// Opens `authorize_url`, logs into Astra (the fake has one button) and
    /// clicks Authorize; returns where the browser ends up and what it shows.
    pub(super) async fn authorize(&self, authorize_url: &str) -> (url::Url, Value) {
        let start = url::Url::parse(authorize_url).unwrap();
        let (page_url, page) = self.navigate(reqwest::Method::GET, start, None).await;
        let form = hidden_inputs(&page);
        let action = page_url.join("/login/oauth/authorize").unwrap();
        let (landed, body) = self
            .navigate(reqwest::Method::POST, action, Some(form))
            .await;
        (landed, serde_json::from_str(&body).unwrap())
    }
}

/// The fake Astra page's hidden inputs, form-encoded.
pub(super) fn hidden_inputs(page: &str) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for input in page.split("<input").skip(1) {
        let attr = |name: &str| {
            let start = input.find(&format!("{name}=\""))? + name.len() + 2;
            let len = input[start..].find('"')?;
            Some(input[start..start + len].replace("&amp;", "&"))
        };
        if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
            form.append_pair(&name, &value);
        }
    }
    form.finish()
}

pub async fn a_victim_who_follows_an_attackers_authorize_link_never_authorizes_the_attackers_user_ref(
    store: Store,
) {
    let world = World::new(store).await;
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let app = world
        .app(|s| s.completion_url = format!("http://127.0.0.1:{port}/done"))
        .await;
    let (customer, _customer) = customer_app(port, app.internal.clone()).await;
    let mallory = Browser::logged_into(&customer, "mallory", &app.public);
    let victim = Browser::logged_into(&customer, "victim", &app.public);

    // The legitimate flow: Mallory connects her own Astra account.
    let (_, started) = app
        .post(
            "/astra/users/mallory/authorization",
            json!({"user_intent_id": "intent-mallory"}),
        )
        .await;
    let (landed, shown) = mallory
        .authorize(started["authorize_url"].as_str().unwrap())
        .await;
    assert!(landed.as_str().starts_with(&customer), "{landed}");
    assert_eq!(shown["confirmed_for"], "mallory", "{shown}");
    assert_eq!(shown["status"], 200, "{shown}");
    let (_, before) = app.get("/astra/users/mallory/token").await;
    let mallorys_astra = world.astra.user_for_intent("intent-mallory");
    assert_eq!(
        world.astra.current_access_token(&mallorys_astra).as_deref(),
        before["access_token"].as_str()
    );

    // The attack: Mallory's app starts an authorization for her own
    // user_ref and sends the link to the victim, who logs into Astra as
    // themselves and clicks Authorize.
    let (_, started) = app
        .post("/astra/users/mallory/authorization", json!({}))
        .await;
    let exchanges = world.astra.code_exchanges();
    let (landed, shown) = victim
        .authorize(started["authorize_url"].as_str().unwrap())
        .await;
    assert_eq!(
        world.astra.code_exchanges(),
        exchanges + 1,
        "Astra issued the victim's tokens"
    );
    assert!(landed.as_str().starts_with(&customer), "{landed}");
    assert_eq!(shown["confirmed_for"], "victim");
    assert_eq!(shown["status"], 403, "{shown}");
    assert_eq!(
        shown["body"]["type"],
        problem("astra-authorization-mismatch")
    );

    // Nothing of the victim's authority is under Mallory's user_ref (her
    // own authorization is untouched) or anywhere else.
    let (status, after) = app.get("/astra/users/mallory/token").await;
    assert_eq!(status, 200);
    assert_eq!(after["access_token"], before["access_token"]);
    assert_eq!(after["generation"], 1);
    let (status, _) = app.get("/astra/users/victim").await;
    assert_eq!(status, 404);
    let (_, listed) = app.get("/astra/users").await;
    assert_eq!(listed["users"].as_array().unwrap().len(), 1, "{listed}");

    // The victim's own authorization, started by the app for them, works.
    let (_, started) = app
        .post("/astra/users/victim/authorization", json!({}))
        .await;
    let (_, shown) = victim
        .authorize(started["authorize_url"].as_str().unwrap())
        .await;
    assert_eq!(shown["status"], 200, "{shown}");
    let (status, token) = app.get("/astra/users/victim/token").await;
    assert_eq!(status, 200);
    assert!(
        world
            .astra
            .is_current_access_token(token["access_token"].as_str().unwrap())
    );
}
