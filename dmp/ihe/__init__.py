"""IHE channels (XDS.b SOAP, MHD FHIR) and what they share."""
