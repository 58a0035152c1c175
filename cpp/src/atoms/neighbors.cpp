#include "matchar/atoms/neighbors.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace matchar::atoms {
namespace {

// Inverse of a row-major 3x3 matrix; returns the determinant.
double invert3(const double* m, double* inv) {
  const double c00 = m[4] * m[8] - m[5] * m[7];
  const double c01 = m[5] * m[6] - m[3] * m[8];
  const double c02 = m[3] * m[7] - m[4] * m[6];
  const double det = m[0] * c00 + m[1] * c01 + m[2] * c02;
  if (det == 0.0) return 0.0;
  const double id = 1.0 / det;
  inv[0] = c00 * id;
  inv[1] = (m[2] * m[7] - m[1] * m[8]) * id;
  inv[2] = (m[1] * m[5] - m[2] * m[4]) * id;
  inv[3] = c01 * id;
  inv[4] = (m[0] * m[8] - m[2] * m[6]) * id;
  inv[5] = (m[2] * m[3] - m[0] * m[5]) * id;
  inv[6] = c02 * id;
  inv[7] = (m[1] * m[6] - m[0] * m[7]) * id;
  inv[8] = (m[0] * m[4] - m[1] * m[3]) * id;
  return det;
}

double norm3(const double* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

bool full_rank(const double* m) {
  double inv[9];
  const double det = invert3(m, inv);
  const double scale = norm3(m) * norm3(m + 3) * norm3(m + 6);
  return scale > 0.0 && std::abs(det) > 1e-8 * scale;
}

void cross(const double* a, const double* b, double* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

// ase gives slabs and wires zero (or dependent) lattice vectors along their
// non-periodic directions. Nothing is wrapped or imaged along those, so any completing
// vectors do: use unit vectors orthogonal to the periodic ones.
void complete_non_periodic(double* cell, const bool* pbc) {
  int periodic[3], n_periodic = 0;
  for (int d = 0; d < 3; ++d)
    if (pbc[d]) periodic[n_periodic++] = d;
  if (n_periodic == 3 || n_periodic == 0) return;
  int free_dims[3], n_free = 0;
  for (int d = 0; d < 3; ++d)
    if (!pbc[d]) free_dims[n_free++] = d;
  if (n_periodic == 2) {
    double* c = cell + 3 * free_dims[0];
    cross(cell + 3 * periodic[0], cell + 3 * periodic[1], c);
    const double n = norm3(c);
    if (n > 0.0)
      for (int k = 0; k < 3; ++k) c[k] /= n;
    return;
  }
  const double* a = cell + 3 * periodic[0];
  const double na = norm3(a);
  if (na == 0.0) return;
  // The coordinate axis least aligned with a, made orthogonal to it, then a x u.
  int axis = 0;
  for (int k = 1; k < 3; ++k)
    if (std::abs(a[k]) < std::abs(a[axis])) axis = k;
  double u[3] = {0, 0, 0};
  u[axis] = 1.0;
  const double proj = a[axis] / (na * na);
  for (int k = 0; k < 3; ++k) u[k] -= proj * a[k];
  const double nu = norm3(u);
  for (int k = 0; k < 3; ++k) u[k] /= nu;
  double v[3];
  cross(a, u, v);
  const double nv = norm3(v);
  for (int k = 0; k < 3; ++k) {
    cell[3 * free_dims[0] + k] = u[k];
    cell[3 * free_dims[1] + k] = v[k] / nv;
  }
}

}  // namespace

NeighborList::NeighborList(const Structure& s, double cutoff)
    : cutoff_(cutoff), n_atoms_(s.n_atoms) {
  if (!(cutoff > 0.0) || !std::isfinite(cutoff))
    throw InvalidArgument("cutoff must be a finite number > 0, got " + std::to_string(cutoff));
  if (s.n_atoms < 0) throw InvalidArgument("n_atoms must be >= 0");
  for (index_t k = 0; k < 3 * s.n_atoms; ++k)
    if (!std::isfinite(s.positions[k]))
      throw InvalidArgument("positions hold NaN or infinite values");
  const bool periodic = s.pbc[0] || s.pbc[1] || s.pbc[2];

  double inv[9] = {0};
  double cell[9] = {0};  // s.cell, with degenerate non-periodic vectors completed
  index_t n_images[3] = {0, 0, 0};
  double skin[3] = {0, 0, 0};  // cutoff in fractional units along each direction
  if (periodic) {
    if (s.cell == nullptr) throw InvalidArgument("cell is required for a periodic structure");
    for (int k = 0; k < 9; ++k)
      if (!std::isfinite(s.cell[k])) throw InvalidArgument("cell holds NaN or infinite values");
    std::copy(s.cell, s.cell + 9, cell);
    if (!full_rank(cell)) complete_non_periodic(cell, s.pbc);
    if (!full_rank(cell))
      throw InvalidArgument(
          "cell has zero volume: the lattice vectors of the periodic directions must be "
          "non-zero and linearly independent");
    invert3(cell, inv);
    for (int d = 0; d < 3; ++d) {
      // Distance between lattice planes along d is 1 / |column d of inv|.
      const double b =
          std::sqrt(inv[d] * inv[d] + inv[3 + d] * inv[3 + d] + inv[6 + d] * inv[6 + d]);
      if (s.pbc[d]) {
        skin[d] = cutoff * b;
        n_images[d] = static_cast<index_t>(std::ceil(skin[d]));
      }
    }
  }

  // Atoms (wrapped along periodic directions) come first, so point i is atom i.
  std::vector<double> frac(static_cast<std::size_t>(3 * s.n_atoms));
  points_.resize(static_cast<std::size_t>(3 * s.n_atoms));
  point_atom_.resize(static_cast<std::size_t>(s.n_atoms));
  for (index_t i = 0; i < s.n_atoms; ++i) {
    const double* r = s.positions + 3 * i;
    point_atom_[i] = i;
    if (!periodic) {
      for (int d = 0; d < 3; ++d) points_[3 * i + d] = r[d];
      continue;
    }
    double f[3];
    for (int d = 0; d < 3; ++d) {
      f[d] = r[0] * inv[d] + r[1] * inv[3 + d] + r[2] * inv[6 + d];
      if (s.pbc[d]) f[d] -= std::floor(f[d]);
      frac[3 * i + d] = f[d];
    }
    for (int d = 0; d < 3; ++d)
      points_[3 * i + d] = f[0] * cell[d] + f[1] * cell[3 + d] + f[2] * cell[6 + d];
  }
  if (periodic) {
    const double n_cells = static_cast<double>(2 * n_images[0] + 1) *
                           static_cast<double>(2 * n_images[1] + 1) *
                           static_cast<double>(2 * n_images[2] + 1);
    if (n_cells * static_cast<double>(s.n_atoms) > 4e9)
      throw OutOfMemory("the cell is too small for this cutoff: " + std::to_string(n_cells) +
                        " periodic images of every atom would be needed");
    const double eps = 1e-12;
    for (index_t a = -n_images[0]; a <= n_images[0]; ++a)
      for (index_t b = -n_images[1]; b <= n_images[1]; ++b)
        for (index_t c = -n_images[2]; c <= n_images[2]; ++c) {
          if (a == 0 && b == 0 && c == 0) continue;
          const double shift[3] = {static_cast<double>(a), static_cast<double>(b),
                                   static_cast<double>(c)};
          for (index_t i = 0; i < s.n_atoms; ++i) {
            double f[3];
            bool keep = true;
            for (int d = 0; d < 3; ++d) {
              f[d] = frac[3 * i + d] + shift[d];
              // Keep images within the cutoff of the cell only (its fractional skin).
              if (s.pbc[d] && (f[d] < -skin[d] - eps || f[d] > 1.0 + skin[d] + eps)) keep = false;
            }
            if (!keep) continue;
            for (int d = 0; d < 3; ++d)
              points_.push_back(f[0] * cell[d] + f[1] * cell[3 + d] + f[2] * cell[6 + d]);
            point_atom_.push_back(i);
          }
        }
  }

  // Bins of side >= cutoff over the bounding box: a query only visits adjacent bins.
  const index_t n = n_points();
  double lo[3], hi[3];
  for (int d = 0; d < 3; ++d) {
    lo[d] = std::numeric_limits<double>::infinity();
    hi[d] = -lo[d];
  }
  for (index_t p = 0; p < n; ++p)
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::min(lo[d], points_[3 * p + d]);
      hi[d] = std::max(hi[d], points_[3 * p + d]);
    }
  if (n == 0)
    for (int d = 0; d < 3; ++d) lo[d] = hi[d] = 0.0;
  const double max_bins = std::max(27.0, 4.0 * static_cast<double>(n));
  double side = cutoff;
  for (;;) {
    double total = 1.0;
    for (int d = 0; d < 3; ++d) total *= std::max(1.0, std::floor((hi[d] - lo[d]) / side));
    if (total <= max_bins) break;
    side *= 1.5;  // sparse structures (isolated molecules far apart): fewer, larger bins
  }
  for (int d = 0; d < 3; ++d) {
    origin_[d] = lo[d];
    n_bins_[d] = static_cast<index_t>(std::max(1.0, std::floor((hi[d] - lo[d]) / side)));
    bin_size_[d] = std::max((hi[d] - lo[d]) / static_cast<double>(n_bins_[d]), side);
  }
  const index_t total_bins = n_bins_[0] * n_bins_[1] * n_bins_[2];
  bin_start_.assign(static_cast<std::size_t>(total_bins + 1), 0);
  std::vector<index_t> bin_of_point(static_cast<std::size_t>(n));
  for (index_t p = 0; p < n; ++p) {
    const double* q = points_.data() + 3 * p;
    const index_t b = (bin_of(q, 0) * n_bins_[1] + bin_of(q, 1)) * n_bins_[2] + bin_of(q, 2);
    bin_of_point[p] = b;
    ++bin_start_[b + 1];
  }
  for (index_t b = 0; b < total_bins; ++b) bin_start_[b + 1] += bin_start_[b];
  bin_points_.resize(static_cast<std::size_t>(n));
  std::vector<index_t> fill(bin_start_.begin(), bin_start_.end() - 1);
  for (index_t p = 0; p < n; ++p) bin_points_[fill[bin_of_point[p]]++] = p;
}

index_t NeighborList::bin_of(const double* p, int d) const {
  const auto b = static_cast<index_t>(std::floor((p[d] - origin_[d]) / bin_size_[d]));
  return std::min(std::max(b, index_t(0)), n_bins_[d] - 1);
}

void NeighborList::neighbors(index_t atom, std::vector<Neighbor>& out, double min_distance) const {
  if (atom < 0 || atom >= n_atoms_)
    throw InvalidArgument("atom index " + std::to_string(atom) + " out of range");
  const double* c = points_.data() + 3 * atom;
  const double rc2 = cutoff_ * cutoff_;
  index_t b[3];
  for (int d = 0; d < 3; ++d) b[d] = bin_of(c, d);
  for (index_t x = std::max<index_t>(b[0] - 1, 0); x <= std::min(b[0] + 1, n_bins_[0] - 1); ++x)
    for (index_t y = std::max<index_t>(b[1] - 1, 0); y <= std::min(b[1] + 1, n_bins_[1] - 1); ++y)
      for (index_t z = std::max<index_t>(b[2] - 1, 0); z <= std::min(b[2] + 1, n_bins_[2] - 1);
           ++z) {
        const index_t bin = (x * n_bins_[1] + y) * n_bins_[2] + z;
        for (index_t k = bin_start_[bin]; k < bin_start_[bin + 1]; ++k) {
          const index_t p = bin_points_[k];
          if (p == atom) continue;
          const double* q = points_.data() + 3 * p;
          const double dx = q[0] - c[0], dy = q[1] - c[1], dz = q[2] - c[2];
          const double r2 = dx * dx + dy * dy + dz * dz;
          if (r2 >= rc2) continue;
          const double r = std::sqrt(r2);
          if (r < min_distance)
            throw InvalidArgument("atoms " + std::to_string(atom) + " and " +
                                  std::to_string(point_atom_[p]) + " are closer than " +
                                  std::to_string(min_distance) + " Å (distance " +
                                  std::to_string(r) + " Å)");
          out.push_back(Neighbor{dx, dy, dz, r, point_atom_[p]});
        }
      }
}

}  // namespace matchar::atoms
