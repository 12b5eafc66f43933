//! The metadata cache: the shard's copy of the latest metadata image, and
//! which node's controller is active as last heard.
//!
//! One per shard, on that shard's core; replaced whole when the node's
//! controller or member publishes a new image ([`crate::shard::ShardMsg`]).
//! Readers take an `Arc` of the image and never hold a borrow across an
//! await.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::MetadataImage;
use crate::ids::{BrokerId, NodeId, ShardId};

pub struct MetadataCache {
    /// The broker this shard is.
    me: BrokerId,
    image: RefCell<Arc<MetadataImage>>,
    /// The node whose controller is active, as last heard.
    controller: Cell<Option<NodeId>>,
}

impl MetadataCache {
    pub fn new(me: BrokerId) -> MetadataCache {
        MetadataCache { me, image: RefCell::default(), controller: Cell::new(None) }
    }

    /// The broker id clients know this shard by.
    pub fn me(&self) -> BrokerId {
        self.me
    }

    /// The latest image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Installs a newer image.
    pub fn set_image(&self, image: Arc<MetadataImage>) {
        *self.image.borrow_mut() = image;
    }

    /// Notes which node's controller is active (`None`: unknown).
    pub fn set_controller(&self, node: Option<NodeId>) {
        self.controller.set(node);
    }

    pub fn controller(&self) -> Option<NodeId> {
        self.controller.get()
    }

    /// The broker id tools find the active controller by: shard 0 of its
    /// node (-1 while unknown).
    pub fn controller_broker(&self) -> i32 {
        self.controller.get().map_or(-1, |n| BrokerId::of(n, ShardId(0)).0)
    }
}
