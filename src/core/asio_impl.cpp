// Asio, Asio SSL and Beast are compiled once, here (separate compilation); every other
// translation unit sees only declarations. See DESIGN.md, "Build".
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
