"""QĐ 130/4750 (Vietnamese health-insurance XML) adapter: envelope → HOSO records → FHIR bundles."""
