//! The HTTP side: listeners, routes, content negotiation and the landing page.

pub mod landing;
pub mod negotiate;
pub mod routes;
pub mod server;
