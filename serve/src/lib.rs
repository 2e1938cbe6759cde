//! What the agent's and the collector's HTTP servers share, so both behave alike at the edge:
//! [`tls`] serves HTTPS with a certificate re-read when its files change (the service CA
//! rotates them in place), [`plain`] is the one rule for when plain HTTP is allowed, and
//! [`authz`] authorizes a caller's bearer token as kube-rbac-proxy does (TokenReview, then
//! SubjectAccessReview), with [`cache`] bounding what it remembers, over [`kubeapi`]'s client.

pub mod authz;
pub mod cache;
pub mod kubeapi;
pub mod plain;
pub mod tls;
