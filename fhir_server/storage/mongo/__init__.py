"""MongoDB adapter of the storage port (issue 16, in progress): PyMongo's
``AsyncMongoClient`` on a replica set or sharded cluster, FHIR transactions as
multi-document transactions."""
