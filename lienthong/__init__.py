"""The composition root: builds the FHIR server app and the `lienthong` CLI from `fhir_server` and the
installed adapter plug-ins. Nothing else imports this package."""
