from django.apps import AppConfig


class XdsConfig(AppConfig):
    name = "dmp.ihe.xds"
    label = "xds"
    verbose_name = "IHE XDS.b SOAP web services with the DMP profile"
