// The one translation unit that compiles Beast's implementation
// (BOOST_BEAST_SEPARATE_COMPILATION is set for parley_http).
#include <boost/beast/src.hpp>
