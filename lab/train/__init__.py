"""`imsearch train`: models learned by this project (dense head, triplet head, autoencoder)."""
