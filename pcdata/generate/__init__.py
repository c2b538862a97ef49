"""Built-in data: Pythia 8 + FastJet jets and parametrised calorimeter showers, in the public layouts."""
