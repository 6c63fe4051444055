"""The CRM domain on top of the engine: customers and their duplicates (``customers``,
``normalize``), the import of a customer base (``importer``), the facade of deals, claims,
interactions and the customer card (``crm``), the sales stages (``stages``), the managers'
analytics (``analytics``), the demo company (``demo``), and the composition root that builds
crmflow as it runs (``system``)."""
