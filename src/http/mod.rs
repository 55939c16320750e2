//! The HTTP side: listeners, routes, content negotiation and the landing page.

pub(crate) mod landing;
mod negotiate;
pub(crate) mod routes;
pub(crate) mod server;
