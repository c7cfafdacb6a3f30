"""IHE XDS.b SOAP web services with the DMP profile."""
