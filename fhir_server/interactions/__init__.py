"""The FHIR RESTful interactions, transaction/batch Bundles and group commit, over the storage interface."""
