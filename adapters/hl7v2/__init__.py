"""HL7 v2.x adapter: ER7 reading, mapping to FHIR R4 transaction Bundles, ACKs and the MLLP listener."""
