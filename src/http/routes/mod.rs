//! Route handlers. Each gets exactly the parts it uses, as its own
//! `web::Data`, registered on its resource by `http::bind`.

pub mod astra;
pub mod health;
pub mod metrics;
pub mod token;
