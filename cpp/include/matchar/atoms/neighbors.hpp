// Neighbour search with cell lists, for periodic (any triclinic cell, including cells
// smaller than the cutoff) and non-periodic structures.
#pragma once

#include <vector>

#include "matchar/common.hpp"

namespace matchar::atoms {

// One structure, borrowed (nothing is copied until NeighborList is built).
struct Structure {
  const double* positions = nullptr;  // (n_atoms, 3) row-major, Å
  index_t n_atoms = 0;
  const double* cell = nullptr;  // (3, 3) row-major, rows are the lattice vectors, Å
  bool pbc[3] = {false, false, false};
};

// A neighbour of a centre: the vector from the centre to the (image of the) neighbour.
struct Neighbor {
  double dx, dy, dz, r;  // Å
  index_t atom;          // index of the neighbour in the structure
};

// Every pair closer than `cutoff`, through all periodic images. Atoms are wrapped into
// the cell along periodic directions, the images within `cutoff` of the cell are
// generated explicitly (so cells smaller than the cutoff work: an atom may be its own
// neighbour through a lattice translation) and all points are binned into cubes of
// side >= cutoff. Building is O(points); a query visits 27 bins.
class NeighborList {
 public:
  // Throws InvalidArgument for cutoff <= 0, non-finite input, or a periodic cell with
  // (near-)zero volume.
  NeighborList(const Structure& structure, double cutoff);

  // Appends the neighbours of `atom` (itself excluded, its periodic images included) to
  // `out`. Throws InvalidArgument when two atoms are closer than `min_distance` Å.
  void neighbors(index_t atom, std::vector<Neighbor>& out, double min_distance = 1e-3) const;

  index_t n_points() const { return static_cast<index_t>(point_atom_.size()); }

 private:
  double cutoff_;
  std::vector<double> points_;       // (n_points, 3): atoms first (wrapped), then images
  std::vector<index_t> point_atom_;  // atom each point is an image of
  index_t n_atoms_ = 0;
  double origin_[3] = {0, 0, 0};
  double bin_size_[3] = {1, 1, 1};
  index_t n_bins_[3] = {1, 1, 1};
  std::vector<index_t> bin_start_;  // CSR over bins
  std::vector<index_t> bin_points_;

  index_t bin_of(const double* p, int d) const;
};

}  // namespace matchar::atoms
