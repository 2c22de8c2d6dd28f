// Where getAccessToken fetches the SDK token. This default is the service in
// dev mode (`cargo run -- dev`), which allows this page when it is served from
// http://127.0.0.1:8000 (`python3 -m http.server 8000 -d examples/browser`).
// In production: the vendor's public URL, e.g. https://tokens.example.com/astrada-sdk-token.
window.ATV_TOKEN_URL = "http://127.0.0.1:8080/astrada-sdk-token";
