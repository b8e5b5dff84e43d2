// The system libyaml (Debian/Ubuntu: libyaml-dev). Package.swift links its static archive on Linux.
#include <yaml.h>
