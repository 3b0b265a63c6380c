//! Training loop: minibatches, alternating adversarial updates, logging.
