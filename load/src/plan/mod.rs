//! What to send and where: the API's shape, the targets, the operation sequence, and [`Load`](crate::Load), the
//! plain description of one run. Leaves: nothing here sends a request.

pub(crate) mod api;
pub(crate) mod bank;
pub(crate) mod bank_api;
pub(crate) mod bank_rounds;
pub(crate) mod load;
pub(crate) mod ops;
pub(crate) mod scenario;
pub(crate) mod target;
