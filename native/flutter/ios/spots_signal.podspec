# The iOS side of the plugin: the static libspots_signal in an XCFramework (device arm64,
# simulator arm64 + x86_64) built by native/scripts/build-ios.sh into Frameworks/. It is linked
# into the app binary, and Dart finds its symbols with DynamicLibrary.process().
Pod::Spec.new do |s|
  s.name             = 'spots_signal'
  s.version          = '0.1.0'
  s.summary          = 'SPOTS end-to-end encryption (Signal Protocol), native core.'
  s.homepage         = 'https://github.com/spots-app/spots-signal'
  s.license          = { :type => 'MIT OR Apache-2.0' }
  s.author           = { 'SPOTS' => 'dev@spots.app' }
  s.source           = { :path => '.' }
  s.platform         = :ios, '13.0'
  s.swift_version    = '5.0'
  # Classes/spots_signal_keep.c references every exported function, so the linker keeps them
  # all in the app binary even though only Dart (through dlsym) calls them.
  s.source_files     = 'Classes/**/*'
  s.vendored_frameworks = 'Frameworks/SpotsSignal.xcframework'
  s.dependency 'Flutter'
  s.pod_target_xcconfig = {
    'DEFINES_MODULE' => 'YES',
    'EXCLUDED_ARCHS[sdk=iphonesimulator*]' => 'i386',
  }
  # Global symbols must survive stripping for dlsym (DynamicLibrary.process()).
  s.user_target_xcconfig = { 'STRIP_STYLE' => 'non-global' }
end
